"""Baselines for score-function sites: subtracted from the learning signal to cut variance.

A baseline's state is explicit, so that a compiled step (``jax.jit``) can carry it: the
strategy hands each step the state and keeps the one the step returns. A running
baseline's state is its average so far (NaN before the first step); a learned baseline's
is a parameter, trained with the others.

    >>> import ppl
    >>> ops = ppl.get_backend().ops
    >>> signal = ops.asarray([1.0, 3.0])
    >>> running = RunningBaseline(ops, 0.9, ops.asarray(float("nan")))
    >>> float(running(signal)), float(running.new_state)   # no past: the mean itself
    (2.0, 2.0)
    >>> running = RunningBaseline(ops, 0.9, running.new_state)
    >>> float(running(ops.asarray([6.0]))), round(float(running.new_state), 6)
    (2.0, 2.4)
"""


class RunningBaseline:
    """Exponential moving average of the mean learning signal, from ``state`` (the average
    before this step, NaN before the first); the next state is ``new_state`` after the call."""

    def __init__(self, ops, decay, state):
        self.ops = ops
        self.decay = decay
        self.state = state
        self.new_state = state

    def __call__(self, signal):
        ops, state = self.ops, self.state
        current = ops.mean(ops.stop_gradient(signal))
        fresh = state != state  # NaN: no step yet
        self.new_state = ops.where(fresh, current, self.decay * state + (1 - self.decay) * current)
        return ops.where(fresh, current, state)

    def loss(self, signal):
        return 0.0


class LearnedBaseline:
    """A scalar parameter ``param`` fitted to the signal by least squares alongside the model."""

    def __init__(self, ops, param):
        self.ops = ops
        self.param = param

    def __call__(self, signal):
        return self.ops.stop_gradient(self.param)

    def loss(self, signal):
        return self.ops.mean(self.ops.square(self.ops.stop_gradient(signal) - self.param))
