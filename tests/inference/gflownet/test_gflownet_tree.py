"""GFlowNet-EM with a user-defined action space: parse trees of a PCFG built bottom-up.

Oracles: :class:`models.pcfg.TreeActions` (the reference construction, in plain Python), every
trajectory enumerated for short sentences, the exact inside algorithm and exact tree
log-probabilities. Seeds are fixed, so outcomes are deterministic.
"""

import math
from collections import defaultdict

import pyro
import pytest
import torch
from torch import nn

from inference import Adam, GFlowNetEM, NonFiniteError
from inference.gflownet.actions import construct
from inference.gflownet.losses import trajectory_balance
from models.pcfg import PCFG, TreeActions, inside_log_likelihood, pcfg_corpus, tree_log_prob
from models.pcfg.program import learned_grammar, pad_sentences, pcfg_program, tree_to_value
from models.pcfg.space import TreeActionSpace


@pytest.fixture(autouse=True)
def _one_thread_fresh_params():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    pyro.clear_param_store()
    yield
    torch.set_num_threads(before)


def all_trajectories(actions, length):
    """Every action sequence that builds a tree over ``length`` words (depth-first)."""
    out, stack = [], [(actions.initial_state(length), [])]
    while stack:
        state, taken = stack.pop()
        if actions.is_terminal(state):
            out.append((taken, actions.to_tree(state)))
            continue
        stack.extend((actions.apply(state, a), taken + [a]) for a in actions.valid_actions(state))
    return out


def forced(trajectories, width):
    rows = [list(t) + [-1] * (width - len(t)) for t in trajectories]
    return torch.tensor(rows)


# ------------------------------------------------------------- the batched action space
def test_batched_space_agrees_with_tree_actions_on_every_trajectory():
    nt, pt, m = 2, 2, 4
    space, reference = TreeActionSpace(nt, pt, 3, m), TreeActions(nt, pt, m)
    for length in (2, 3, 4):
        paths = all_trajectories(reference, length)
        state = space.start(torch.full((len(paths),), length))
        states = [reference.initial_state(length)] * len(paths)
        for t in range(2 * length - 1):
            masks = torch.stack([reference.action_mask(s) for s in states])
            assert torch.equal(space.mask(state), masks)
            step = torch.tensor([p[t] for p, _ in paths])
            state = space.apply(state, step)
            states = [reference.apply(s, int(a)) for s, a in zip(states, step)]
            assert space.num_parents(state).tolist() == [reference.num_parents(s) for s in states]
        assert bool(space.is_terminal(state).all())
        values = space.values(state)["tree"]
        for value, (_, tree) in zip(values, paths):
            assert torch.equal(value, tree_to_value(tree, nt, m))
            rebuilt = space.to_tree(value, length)
            assert sorted(rebuilt.spans) == sorted(tree.spans) and rebuilt.tags == tree.tags


# ------------------------------------------------------------- the exact posterior policy
class ExactTreePolicy(nn.Module):
    """P_F(a | s) proportional to the edge flow sum over trajectories through (s, a) of
    R(tree) P_B(trajectory | tree), from every trajectory of each sentence; log Z = the exact
    inside log-likelihood. States are keyed by (features, encoding): the encoding holds the
    top-level constituents, and the remaining flow depends on nothing else."""

    def __init__(self, space, reference, grammar, sentences, features):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.edge = defaultdict(lambda: torch.full((space.num_actions,), -math.inf, dtype=torch.float64))
        self.log_z = {}
        for x, feature in zip(sentences, features):
            paths = all_trajectories(reference, len(x))
            lp = torch.stack([tree_log_prob(grammar, x, tree) for _, tree in paths]).double()
            self.log_z[self._key(feature)] = inside_log_likelihood(grammar, x).double()
            state = space.start(torch.full((len(paths),), len(x)))
            log_w = lp.clone()  # log R + log P_B of the whole trajectory
            encodings, steps = [], []
            for t in range(2 * len(x) - 1):
                encodings.append(space.encode(state))
                steps.append(torch.tensor([p[t] for p, _ in paths]))
                state = space.apply(state, steps[-1])
                log_w = log_w - space.num_parents(state).double().log()
            for encoding, step in zip(encodings, steps):
                for row, a, w in zip(encoding, step, log_w):
                    table = self.edge[self._key(feature, row)]
                    table[a] = torch.logaddexp(table[a], w)

    @staticmethod
    def _key(feature, encoding=None):
        parts = feature if encoding is None else torch.cat([feature, encoding])
        return parts.double().numpy().tobytes()

    def forward(self, features, encoding):
        return torch.stack([self.edge[self._key(f, e)] for f, e in zip(features, encoding)]).float()

    def log_partition(self, features):
        return torch.stack([self.log_z[self._key(f)] for f in features]).float()


def small_corpus_model(lengths=(3, 4), nt=2, pt=2, vocab=3, seed=0):
    m = max(lengths)
    g = torch.Generator().manual_seed(seed)
    sentences = [torch.randint(vocab, (n,), generator=g) for n in lengths]
    words, lengths = pad_sentences(sentences, m)
    model = pcfg_program(nt, pt, vocab, m, seed=seed)
    return sentences, words, lengths, model, TreeActionSpace(nt, pt, vocab, m)


def test_tb_residual_is_zero_for_the_exact_posterior_policy_with_uniform_backward_policy():
    sentences, words, lengths, model, space = small_corpus_model(lengths=(3, 4, 2))
    em = GFlowNetEM(model, action_space=space, m_step=None)
    features = em._current_features((words, lengths), {})
    grammar = learned_grammar(em.params)
    em.policy = ExactTreePolicy(space, TreeActions(2, 2, 4), grammar, sentences, features)
    run_features, run = em.sampler.trajectories(em.policy, features, 200)  # per sentence; lengths 5, 7, 3
    assert sorted(set(run.lengths.tolist())) == [3, 5, 7]
    log_r = em.sampler.score_values(space.values(run.state), (words, lengths), {}, 200)[0].reshape(-1)
    log_z = em.policy.log_partition(run_features)
    residual = trajectory_balance(log_z, run.log_pf.sum(-1), log_r, run.log_pb.sum(-1)).sqrt()
    # float32 rewards and P_F: each of the <= 2 * 7 + 2 terms of about 10 nats carries a
    # rounding error of at most 10 * 2^-24 ~ 6e-7, so |residual| < 16 * 6e-7 ~ 1e-5 (2e-5 allowed)
    assert float(residual.detach().max()) < 2e-5, float(residual.detach().max())
    # P_B matters: without it the residual is the log of the number of orders of the merges
    without = trajectory_balance(log_z, run.log_pf.sum(-1), log_r).sqrt()
    assert float(without.detach().max()) > 0.5


# ------------------------------------------------------------- a trained sampler
def sampler_tree_distribution(em, space, reference, x, words, lengths):
    """The sampler's exact probability of each tree of ``x``: sum over its trajectories of the
    product of P_F (every trajectory forced through the policy)."""
    paths = all_trajectories(reference, len(x))
    features = em._current_features((words, lengths), {})
    start = space.start(torch.full((len(paths),), len(x)))
    with torch.no_grad():
        run = construct(space, em.policy, features[:1].expand(len(paths), -1), start,
                        forced=forced([p for p, _ in paths], 2 * len(x) - 1))
    probs = defaultdict(float)
    for (_, tree), lp in zip(paths, run.log_pf.sum(-1)):
        probs[(tuple(sorted(tree.spans)), tree.tags)] += float(lp.exp())
    return probs, {(tuple(sorted(t.spans)), t.tags): t for _, t in paths}


def test_trained_sampler_matches_the_exact_posterior_over_trees():
    # one 4-word sentence, NT = 1, PT = 2: 5 bracketings x 16 taggings = 80 trees, and the
    # balanced bracketing has two trajectories (merge orders): the sampler must split them
    torch.manual_seed(0)
    sentences, words, lengths, model, space = small_corpus_model(lengths=(4,), nt=1, pt=2)
    em = GFlowNetEM(model, action_space=space, m_step=None, hidden=64, epsilon=0.05,
                    optimizer=Adam(lr=3e-3), num_trajectories=16)
    em.run(words, lengths, num_steps=700, progress=False)
    x, grammar = sentences[0], learned_grammar(em.params)
    probs, trees = sampler_tree_distribution(em, space, TreeActions(1, 2, 4), x, words, lengths)
    assert len(trees) == 80 and abs(sum(probs.values()) - 1) < 1e-5
    log_px = inside_log_likelihood(grammar, x)
    exact = {k: float((tree_log_prob(grammar, x, t) - log_px).exp()) for k, t in trees.items()}
    total_variation = 0.5 * sum(abs(probs[k] - exact[k]) for k in trees)
    assert total_variation < 0.05, total_variation
    # importance sampling with the sampler as proposal recovers log p(x): weights
    # p(x, z) P_B(tau | z) / P_F(tau) on trajectories; 4 standard errors of log(mean weight)
    # (delta method: sd(w) / (mean(w) sqrt(n))) plus 1e-4 for float32 rounding of ~10-nat terms
    with torch.no_grad():
        features = em._current_features((words, lengths), {})
        log_r, _, log_q = em.sampler.draw(em.policy, features, 4000, (words, lengths), {})
    log_w = (log_r - log_q).reshape(-1).double()
    estimate = float(torch.logsumexp(log_w, 0) - math.log(len(log_w)))
    weights = (log_w - log_w.max()).exp()
    standard_error = float(weights.std() / weights.mean()) / math.sqrt(len(weights))
    assert abs(estimate - float(log_px)) < 4 * standard_error + 1e-4, (estimate, standard_error)
    assert abs(em.evaluate(words, lengths, num_samples=4000) - float(log_px)) < 4 * standard_error + 1e-4


# ------------------------------------------------------------- EM
def test_gflownet_em_raises_the_exact_likelihood_toward_exact_em():
    truth = PCFG.random(2, 2, 4, seed=5, scale=2.0)
    sentences, _ = pcfg_corpus(40, seed=1, max_length=5, grammar=truth)
    words, lengths = pad_sentences(sentences, 5)
    model = pcfg_program(2, 2, 4, 5, seed=0)
    initial = float(inside_log_likelihood(model.initial_grammar, sentences).mean())
    # exact EM reference: the same parameterisation, initialisation, optimiser and steps
    params = [t.clone().requires_grad_() for t in (model.initial_grammar.rule_logits,
                                                   model.initial_grammar.emission_logits,
                                                   model.initial_grammar.root_logits)]
    optimizer = torch.optim.Adam(params, lr=3e-2)
    for _ in range(150):
        loss = -inside_log_likelihood(PCFG(*params), sentences).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    exact_em = float(inside_log_likelihood(PCFG(*[p.detach() for p in params]), sentences).mean())
    torch.manual_seed(0)
    em = GFlowNetEM(model, action_space=TreeActionSpace(2, 2, 4, 5), hidden=64, num_trajectories=8,
                    m_step="reweighted", optimizer=Adam(lr=3e-3), model_optimizer=Adam(lr=3e-2))
    em.run(words, lengths, num_steps=150, progress=False)
    learned = float(inside_log_likelihood(learned_grammar(em.params), sentences).mean())
    # GFlowNet-EM climbs at least half of the way exact EM climbs (about 2 nats per sentence;
    # measured: 98% of it, 0.04 nats short, with this seed)
    assert learned > initial + 0.5 * (exact_em - initial), (initial, learned, exact_em)


# ------------------------------------------------------------- bad input
class WrongWidth(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.head = nn.Linear(1, width)

    def forward(self, features, encoding):
        return self.head(features[:, :1])

    def log_partition(self, features):
        return features[:, 0]


def test_bad_input():
    sentences, words, lengths, model, space = small_corpus_model()
    with pytest.raises(ValueError, match=r"policy gives logits of shape \(\d+, 5\), but the action "
                                         r"space TreeActionSpace.* has 8 actions"):
        GFlowNetEM(model, action_space=space, policy=WrongWidth(5)).step(words, lengths)
    for option in ({"local_search": 1}, {"sleep": 1.0}, {"order": ["tree"]}):
        with pytest.raises(ValueError, match=f"{next(iter(option))}= does not apply with action_space"):
            GFlowNetEM(model, action_space=space, **option)
    with pytest.raises(ValueError, match="builds site 'parse', which is not a latent site"):
        GFlowNetEM(model, action_space=TreeActionSpace(2, 2, 3, 4, site="parse")).step(words, lengths)
    em = GFlowNetEM(model, action_space=space, m_step=None)
    with pytest.raises(ValueError, match="trajectory_log_probs enumerates scalar sites"):
        em.trajectory_log_probs(words, lengths)
    em.step(words, lengths)
    features = em._current_features((words, lengths), {})
    with pytest.raises(ValueError, match="forced action 3 at step 0 is not valid"):
        construct(space, em.policy, features, space.start(lengths), forced=torch.tensor([[3], [3]]))
    # a grammar that forbids all but one rule gives some sampled trees probability 0
    with em.param_scope():
        pyro.param("rule_logits").data[:, :, :] = -math.inf
        pyro.param("rule_logits").data[:, 2, 2] = 0.0
    with pytest.raises(NonFiniteError, match="site 'tree' in the model has a non-finite log density"):
        em.step(words, lengths)


def test_checkpoint_with_an_action_space_and_replay_resumes_exactly(tmp_path):
    sentences, _ = pcfg_corpus(6, seed=0, max_length=4)
    words, lengths = pad_sentences(sentences, 4)

    def fresh():
        pyro.clear_param_store()
        return GFlowNetEM(pcfg_program(2, 2, 17, 4, seed=1), action_space=TreeActionSpace(2, 2, 17, 4),
                          hidden=16, num_trajectories=2, m_step="reweighted", replay=2)

    em = fresh()
    em.run(words, lengths, num_steps=3, progress=False)
    em.save(tmp_path / "em.pt")
    continued = em.run(words, lengths, num_steps=3, progress=False)
    torch.manual_seed(99)
    resumed = fresh()
    resumed.load(tmp_path / "em.pt")
    assert resumed.run(words, lengths, num_steps=3, progress=False) == continued
