"""A TRICE step through ``inference.TRICE`` against the same update written by hand in torch,
on the rationale toy of ``models/rationales.py`` (three tokens from an autoregressive
model per input, an answer check), full batch, Adam(0.05), control variate on.

The hand-written step draws the proposals, scores them and the memory, applies the
answer-check Metropolis-Hastings rule (accept a correct proposal), forms the
leave-one-out control variate and takes one Adam step: the arithmetic ``TRICE`` does,
without the program, its handlers and the engine. No peer library implements TRICE.
"""

import torch

from inference import TRICE, Adam
from models.rationales import LENGTH, TOKENS, initial_logits, rationale_model, toy_data

from .common import Method, markdown_table, paired_ratio, time_interleaved, verdict

TARGET = 1.2  # ours / hand-written, per step (issue 18)
FULL, SMALL = (7, 20, (8, 2048)), (2, 3, (8,))  # (rounds, steps per round, input counts)


class HandWritten:
    """The TRICE update for the rationale toy, by hand."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.params = [torch.tensor(v, dtype=torch.float32, requires_grad=True)
                       for v in initial_logits(len(x)).values()]
        self.optimizer = torch.optim.Adam(self.params, lr=0.05)
        self.memory = torch.zeros(len(x), LENGTH, dtype=torch.long)
        self.valid = torch.zeros(len(x), dtype=torch.bool)

    def log_prior(self, z):
        first, second, third = self.params
        x = self.x
        return (torch.log_softmax(first[x], -1).gather(-1, z[:, :1]).squeeze(-1)
                + torch.log_softmax(second[x, z[:, 0]], -1).gather(-1, z[:, 1:2]).squeeze(-1)
                + torch.log_softmax(third[x, z[:, 0], z[:, 1]], -1).gather(-1, z[:, 2:]).squeeze(-1))

    def propose(self):
        first, second, third = self.params
        x = self.x
        with torch.no_grad():
            z1 = torch.distributions.Categorical(logits=first[x]).sample()
            z2 = torch.distributions.Categorical(logits=second[x, z1]).sample()
            z3 = torch.distributions.Categorical(logits=third[x, z1, z2]).sample()
        return torch.stack([z1, z2, z3], -1)

    def step(self):
        proposal = self.propose()
        right = proposal.sum(-1) % TOKENS == self.y
        accept = right | ~self.valid  # a valid memory takes a correct proposal
        was_valid = self.valid
        memory = torch.where(accept[:, None], proposal, self.memory)
        self.valid = torch.where(accept, right, self.valid)
        self.memory = memory
        v, a = was_valid.float(), (accept & was_valid).float()
        others = v.sum() - v
        beta = torch.where(others > 0, (a.sum() - a) / others.clamp(min=1.0), torch.zeros_like(v))
        n = len(self.x)
        surrogate = -((self.valid.float() / n) * self.log_prior(memory)).sum() \
            + ((beta * v / n) * self.log_prior(proposal)).sum()
        self.optimizer.zero_grad(set_to_none=True)
        surrogate.backward()
        self.optimizer.step()


def bench_torch(quick=False, device="cpu"):
    if str(device) != "cpu":
        return f"(skipped: the TRICE benchmark runs on the CPU, not {device})"
    rounds, steps, sizes = SMALL if quick else FULL
    rows, notes = [], []
    for n in sizes:
        x, y = toy_data(n)
        torch.manual_seed(0)
        trice = TRICE(rationale_model, Adam(0.05), rng_seed=0)
        hand = HandWritten(x, y)
        ours = Method("ours", lambda: trice.step(x, y))
        theirs = Method("hand", hand.step)
        time_interleaved([ours, theirs], rounds, steps, warmup=3)
        ratio = paired_ratio(ours, theirs)
        rows += [[f"{m.name}, {n} inputs", f"{1e3 * m.median:.3f}"] for m in (ours, theirs)]
        notes.append(f"{n} inputs: ours / hand-written, per step: {ratio} "
                     f"(target <= {TARGET}: {verdict(ratio, TARGET)})")
    table = markdown_table(["method", "ms per step (median)"], rows)
    return "\n\n".join([f"### TRICE on torch, rationale toy (full batch, {LENGTH} tokens)",
                        table, "\n".join(notes)])


BENCHMARKS = {"trice_torch": bench_torch}
