"""Model-side enumeration on JAX (NumPyro's funsor machinery): a hidden Markov model with
ppl.markov against the forward algorithm, a Gaussian mixture against NumPyro's
TraceEnum_ELBO on the same parameters, Importance, and the refusals by name."""

import numpy as np
import pytest

pytest.importorskip("numpyro")
pytest.importorskip("funsor")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from numpyro.infer import TraceEnum_ELBO  # noqa: E402

import ppl  # noqa: E402
import ppl.distributions as dist  # noqa: E402
from inference import ELBO, IWAE, VI, Adam, Importance  # noqa: E402
from ppl.errors import SiteError  # noqa: E402

ENUM = {"enumerate": "parallel"}
TRANSITION = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]], dtype=np.float32)
MEANS = np.array([-2.0, 0.0, 2.0], dtype=np.float32)
STEPS = 30


def hmm_data(seed=0):
    rng, z, ys = np.random.default_rng(seed), 0, []
    for _ in range(STEPS):
        z = rng.choice(3, p=TRANSITION[z])
        ys.append(MEANS[z] + rng.normal())
    return jnp.asarray(np.array(ys, dtype=np.float32))


def forward_log_likelihood(ys):
    def emission(y):
        return -0.5 * (y - MEANS) ** 2 - 0.5 * np.log(2 * np.pi)
    alpha = np.log(TRANSITION[0]) + emission(float(ys[0]))
    for y in np.asarray(ys[1:]):
        alpha = np.logaddexp.reduce(alpha[:, None] + np.log(TRANSITION), 0) + emission(y)
    return float(np.logaddexp.reduce(alpha))


def hmm(ys):
    transition = ppl.param("transition", jnp.asarray(TRANSITION), constraint=dist.constraints.simplex)
    z = 0
    for t in ppl.markov(range(len(ys))):
        z = ppl.sample(f"z_{t}", dist.Categorical(transition[z]), infer=ENUM)
        ppl.sample(f"y_{t}", dist.Normal(jnp.asarray(MEANS)[z], 1.0), obs=ys[t])


def empty(*args):
    pass


def test_hmm_equals_the_forward_algorithm_and_trains():
    ys = hmm_data()
    exact = forward_log_likelihood(ys)
    with ppl.backend("jax"):
        for objective in (ELBO(), IWAE(4)):
            assert VI(hmm, empty, objective).loss(ys) == pytest.approx(-exact, rel=1e-5)
        evidence = Importance(hmm, num_particles=3, rng_seed=0).run(ys).log_evidence
        assert evidence == pytest.approx(exact, rel=1e-5)
        vi = VI(hmm, empty, ELBO(), Adam(lr=0.05), rng_seed=0)
        losses = vi.run(ys, num_steps=30, progress=False)
    assert losses[-1] < losses[0]  # maximum likelihood of the transition matrix climbs


DATA = jnp.asarray(np.random.default_rng(1).normal(size=40).astype(np.float32) * 3)


def gmm(data):
    weights = ppl.param("weights", jnp.ones(3) / 3, constraint=dist.constraints.simplex)
    locs = ppl.param("locs", jnp.array([-2.0, 0.0, 2.0]))
    scale = ppl.param("scale", 1.5, constraint=dist.constraints.positive)
    with ppl.plate("data", len(data)):
        assignment = ppl.sample("assignment", dist.Categorical(weights), infer=ENUM)
        ppl.sample("obs", dist.Normal(locs[assignment], scale), obs=data)


def test_gaussian_mixture_equals_numpyros_trace_enum_elbo_after_training():
    with ppl.backend("jax"):
        vi = VI(gmm, empty, ELBO(), Adam(lr=0.05), rng_seed=0)
        vi.run(DATA, num_steps=100, progress=False)
        ours = vi.loss(DATA)
        theirs = TraceEnum_ELBO().loss(jax.random.PRNGKey(0), vi.params, gmm, empty, DATA)
    assert ours == pytest.approx(float(theirs), rel=1e-5)


def test_a_subsampled_mixture_scales_each_sum_as_a_whole():
    """Pyro's semantics for a sum inside a subsampled plate: the log of each point's sum over
    its assignment, times the plate's scale 40 / 10, i.e. -4 sum_{i in batch}
    logsumexp_k [log(1/3) + log N(x_i | loc_k, 1.5)]. The oracle is that sum, by hand, on the
    very indices the run drew (the model records them; ``loss`` runs eagerly). Scaling inside
    the sum, -sum_i logsumexp_k 4 [...], is 14 nats away here; the two agree to float32
    rounding (1e-5 relative), so the tolerance is that."""
    seen = []

    def subsampled(data):  # all sites in one subsampled plate: one common scale 40 / 10
        with ppl.plate("data", len(data), subsample_size=10) as ind:
            seen.append(np.asarray(ind))
            assignment = ppl.sample("assignment", dist.Categorical(jnp.ones(3) / 3), infer=ENUM)
            ppl.sample("obs", dist.Normal(jnp.array([-2.0, 0.0, 2.0])[assignment], 1.5), obs=data[ind])

    with ppl.backend("jax"):
        vi = VI(subsampled, empty)
        vi.loss(DATA)  # set-up: dry runs
        runs = len(seen)
        loss = vi.loss(DATA)
    assert len(seen) == runs + 1  # one model run scored: its indices are the batch
    batch = np.asarray(DATA)[seen[-1]]
    assert len(set(seen[-1].tolist())) == 10
    log_joint = (np.log(1 / 3) - 0.5 * ((batch[:, None] - np.array([-2.0, 0.0, 2.0])) / 1.5) ** 2
                 - np.log(1.5 * np.sqrt(2 * np.pi)))  # [point, component]
    whole = -4 * np.logaddexp.reduce(log_joint, 1).sum()
    inside = -np.logaddexp.reduce(4 * log_joint, 1).sum()
    assert abs(whole - inside) > 1.0  # the oracle tells the two apart on this batch
    assert loss == pytest.approx(whole, rel=1e-5)


def test_per_element_weights_with_enumerated_locals_count_a_global_site_once():
    # every particle is the same (nothing is drawn), so IWAE's bound is log p(x) exactly; the
    # global site "g" outside the plate of per-element weights counts once, not once per point
    def model(data):
        ppl.sample("g", dist.Normal(0.0, 1.0), obs=jnp.array(3.0))
        with ppl.plate("data", len(data)):
            c = ppl.sample("c", dist.Bernoulli(0.3), infer=ENUM)
            ppl.sample("x", dist.Normal(2.0 * c, 2.0 ** 0.5), obs=data)

    def normal(x, loc, scale):
        return -0.5 * ((x - loc) / scale) ** 2 - np.log(scale * np.sqrt(2 * np.pi))

    per_point = np.logaddexp(np.log(0.7) + normal(0.0, 0.0, 2 ** 0.5),
                             np.log(0.3) + normal(0.0, 2.0, 2 ** 0.5))
    exact = normal(3.0, 0.0, 1.0) + 4 * per_point
    with ppl.backend("jax"):
        vi = VI(model, empty, IWAE(3))
        assert vi.loss(jnp.zeros(4)) == pytest.approx(-exact, rel=1e-5)
        assert vi._keep == (("data", -1),)  # the per-element path was taken


def test_a_markov_window_longer_than_the_chain_is_named_on_jax():
    with ppl.backend("jax"):
        def chain(ys):
            z = 0
            for t in ppl.markov(range(len(ys)), history=3):
                z = ppl.sample(f"z_{t}", dist.Categorical(jnp.asarray(TRANSITION)[z]), infer=ENUM)
        with pytest.raises(SiteError, match="site 'z_0' is in ppl.markov\\(history=3\\) over a chain of 2"):
            VI(chain, empty).loss(hmm_data()[:2])


P_X, P_Y = np.array([0.4, 0.6]), np.array([[0.75, 0.25], [0.55, 0.45]])
P_Z = np.array([[0.3, 0.7], [0.2, 0.8]])
DATA_Z = jnp.array([1, 0, 1])


def x_y_model(z):  # x global, enumerated by the guide; y local, summed out by the model
    x = ppl.sample("x", dist.Categorical(jnp.asarray(P_X)))
    with ppl.plate("data", len(z)):
        y = ppl.sample("y", dist.Categorical(jnp.asarray(P_Y)[x]), infer=ENUM)
        ppl.sample("z", dist.Categorical(jnp.asarray(P_Z)[y]), obs=z)


def x_guide(z):
    probs = ppl.param("probs", jnp.array([0.1, 0.9]), constraint=dist.constraints.simplex)
    ppl.sample("x", dist.Categorical(probs), infer=ENUM)


def test_enumeration_in_guide_and_model_is_the_exact_elbo_and_trains_to_the_posterior():
    log_lik = np.log(P_Y @ P_Z[:, np.asarray(DATA_Z)]).sum(-1)  # log p(z | x), y summed out
    q = np.array([0.1, 0.9])
    exact = (q * (np.log(P_X) + log_lik - np.log(q))).sum()
    posterior = np.exp(np.log(P_X) + log_lik - np.logaddexp.reduce(np.log(P_X) + log_lik))
    with ppl.backend("jax"):
        assert -VI(x_y_model, x_guide, ELBO(3)).loss(DATA_Z) == pytest.approx(exact, abs=1e-5)
        vi = VI(x_y_model, x_guide, ELBO(), Adam(lr=0.05), rng_seed=0)
        vi.run(DATA_Z, num_steps=300, progress=False)  # every site is summed: exact gradients
        fitted = np.asarray(vi.params["probs"])
    assert np.allclose(fitted, posterior, atol=1e-3), (fitted, posterior)


def _emission(y):
    return -0.5 * (float(y) - MEANS) ** 2


def viterbi(ys):
    score, back = np.log(TRANSITION[0]) + _emission(ys[0]), []
    for y in ys[1:]:
        total = score[:, None] + np.log(TRANSITION)
        back.append(total.argmax(0))
        score = total.max(0) + _emission(y)
    path = [int(score.argmax())]
    for best in reversed(back):
        path.append(int(best[path[-1]]))
    return path[::-1]


def test_infer_discrete_along_a_chain_is_the_viterbi_path_and_samples_follow_the_posterior():
    """Decoded site by site (linear memory: NumPyro's decoder needed more than 24 GB at 30
    steps). MAP: the Viterbi path. Draws on a two-step chain: each step's frequency over 120
    joint draws against its exact marginal (the four joint configurations summed), within
    4 binomial standard errors."""
    ys = hmm_data()
    # on (0.8, -1.4, -2.8) picking each step by its marginal instead of its max-marginal
    # would give (1, 0, 0), not the MAP path (0, 0, 0); on (-0.9, 0.9) both steps are uncertain
    tricky, uncertain = jnp.asarray([0.8, -1.4, -2.8]), jnp.asarray([-0.9, 0.9])
    with ppl.backend("jax"):
        vi = VI(hmm, empty, rng_seed=0)
        for observed in (ys[:8], tricky):
            best = vi.infer_discrete(observed, temperature=0)
            assert [int(best[f"z_{t}"]) for t in range(len(observed))] == viterbi(observed)
        draws = [vi.infer_discrete(uncertain) for _ in range(120)]
    ys = uncertain
    joint = (np.log(TRANSITION[0])[:, None] + _emission(ys[0])[:, None] + np.log(TRANSITION)
             + _emission(ys[1])[None, :])
    joint = np.exp(joint - np.logaddexp.reduce(joint.ravel()))
    for t, marginal in ((0, joint.sum(1)), (1, joint.sum(0))):
        counts = np.bincount([int(d[f"z_{t}"]) for d in draws], minlength=3) / len(draws)
        tolerance = 4 * np.sqrt(marginal * (1 - marginal) / len(draws)) + 1e-3
        assert np.all(np.abs(counts - marginal) < tolerance), (t, counts, marginal)


def test_infer_discrete_of_a_mixture_is_the_posterior_argmax_on_jax():
    with ppl.backend("jax"):
        vi = VI(gmm, empty, None, Adam(lr=0.05), rng_seed=0)
        vi.run(DATA, num_steps=50, progress=False)
        decoded = vi.infer_discrete(DATA, temperature=0)["assignment"]
        drawn = vi.infer_discrete(DATA, temperature=1)["assignment"]
        params = vi.params
    weights, locs, scale = (np.asarray(params[name]) for name in ("weights", "locs", "scale"))
    log_posterior = np.log(weights) - 0.5 * ((np.asarray(DATA)[:, None] - locs) / scale) ** 2
    assert (np.asarray(decoded) == log_posterior.argmax(1)).all()
    # a joint draw: the number of points drawn to their most probable component has mean
    # sum_i p_i(max) and variance sum_i p_i (1 - p_i); four standard deviations
    probs = np.exp(log_posterior - np.logaddexp.reduce(log_posterior, 1, keepdims=True))
    p_max = probs.max(1)
    hits = (np.asarray(drawn) == probs.argmax(1)).sum()
    assert abs(hits - p_max.sum()) <= 4 * np.sqrt((p_max * (1 - p_max)).sum()) + 1e-9
