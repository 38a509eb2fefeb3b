"""Baselines for score-function sites: subtracted from the learning signal to cut variance."""


class RunningBaseline:
    """Exponential moving average of the (mean) learning signal."""

    def __init__(self, ops, decay):
        self.ops = ops
        self.decay = decay
        self.value = None

    def __call__(self, signal):
        current = self.ops.mean(self.ops.stop_gradient(signal))
        baseline = current if self.value is None else self.value
        self.value = current if self.value is None else self.decay * self.value + (1 - self.decay) * current
        return baseline

    def loss(self, signal):
        return 0.0

    def state(self):
        return self.value

    def load(self, value):
        self.value = value


class LearnedBaseline:
    """A scalar parameter fitted to the signal by least squares alongside the model."""

    def __init__(self, ops, like):
        import torch

        self.ops = ops
        self.param = torch.zeros((), dtype=like.dtype, device=like.device, requires_grad=True)

    def __call__(self, signal):
        return self.param.detach()

    def loss(self, signal):
        return self.ops.mean(self.ops.square(self.ops.stop_gradient(signal) - self.param))

    def state(self):
        return self.param.detach().clone()

    def load(self, value):
        import torch

        with torch.no_grad():
            self.param.copy_(value)
