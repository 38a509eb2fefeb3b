"""Bad input that used to fail raw or misleading (issue: errors name the site or argument and
say what was expected): each case is now one of the project's errors naming it, on both
backends where the input reaches both. Above each test, what happened before."""

import math

import numpy as np
import pyro
import pytest
import torch
from torch.distributions import constraints

import inference
import ppl
import ppl.distributions as dist
from inference import IWAE, VI, Adam, GFlowNetEM, Importance
from ppl.errors import NonFiniteError, ShapeError, SiteError

X = torch.tensor([0.5, 1.0, 1.5])


def model(x):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("x", dist.Normal(mu, 1.0), obs=x)


def guide(x):
    ppl.sample("mu", dist.Normal(ppl.param("loc", torch.tensor(0.0)), 1.0))


def on_jax():
    """The JAX backend, for a block (the test is skipped without NumPyro)."""
    pytest.importorskip("numpyro")
    return ppl.backend("jax")


def jax_programs():
    """The same model and guide on JAX (to be defined under the JAX backend)."""

    def jax_model(x):
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        with ppl.plate("data", len(x)):
            ppl.sample("x", dist.Normal(mu, 1.0), obs=x)

    def jax_guide(x):
        ppl.sample("mu", dist.Normal(ppl.param("loc", 0.0), 1.0))

    return jax_model, jax_guide


# ----------------------------------------------------------------- data and observations
# today: VI raised torch's "Expected value argument ... Real()" without the site; Importance
# blamed the vectorised particles (ShapeError)
@pytest.mark.parametrize("strategy", ["vi", "importance"])
def test_nan_in_observations_names_the_site(strategy):
    data = torch.tensor([0.5, math.nan, 1.5])
    run = (lambda: VI(model, guide).step(data)) if strategy == "vi" else \
        (lambda: Importance(model, num_particles=10).run(data))
    with pytest.raises(SiteError, match="site 'x': the observed value contains NaN"):
        run()


# today (JAX): NonFiniteError "loss is inf" at the first step, the NaN not mentioned
def test_nan_in_observations_on_jax():
    with on_jax():
        import jax.numpy as jnp

        jax_model, jax_guide = jax_programs()
        with pytest.raises(SiteError, match="site 'x': the observed value contains NaN"):
            VI(jax_model, jax_guide).step(jnp.array([0.5, jnp.nan]))


# today: torch "The value argument to log_prob must be a Tensor" (no site); JAX a
# TracerArrayConversionError from inside the compiled step
def test_a_python_list_as_data():
    with pytest.raises(SiteError, match="site 'x': the observed value is a list.*torch.Tensor"):
        VI(model, guide).step([0.5, 1.0])
    with on_jax():
        jax_model, jax_guide = jax_programs()
        with pytest.raises(SiteError, match="site 'x': the observed value is a list.*JAX or NumPy"):
            VI(jax_model, jax_guide).step([0.5, 1.0])


# today: ZeroDivisionError "size cannot be zero" (torch), AssertionError (JAX)
def test_empty_data_names_the_plate():
    with pytest.raises(SiteError, match="plate 'data' has size 0: the data it runs over are empty"):
        VI(model, guide).step(torch.tensor([]))
    with pytest.raises(SiteError, match="plate 'data' has size 0"):
        Importance(model, num_particles=10).run(torch.tensor([]))
    with on_jax():
        import jax.numpy as jnp

        jax_model, jax_guide = jax_programs()
        with pytest.raises(SiteError, match="plate 'data' has size 0"):
            VI(jax_model, jax_guide).step(jnp.array([]))


def categorical_model(y):
    p = ppl.sample("p", dist.Dirichlet(torch.ones(3)))
    with ppl.plate("data", len(y)):
        ppl.sample("y", dist.Categorical(p), obs=y)


def categorical_guide(y):
    concentration = ppl.param("concentration", torch.ones(3), constraint=constraints.positive)
    ppl.sample("p", dist.Dirichlet(concentration))


# today: torch's "Expected value argument ... IntegerInterval" without the site (VI), or a
# ShapeError blaming the vectorised particles (Importance)
@pytest.mark.parametrize("values", [[0.5, 1.0], [0, 5]], ids=["float", "out_of_range"])
def test_categorical_observation_outside_its_support(values):
    y = torch.tensor(values)
    message = r"site 'y': 1 of 2 observed values lie outside the support of Categorical"
    with pytest.raises(SiteError, match=message):
        VI(categorical_model, categorical_guide).step(y)
    with pytest.raises(SiteError, match=message):
        Importance(categorical_model, num_particles=10).run(y)


# today (JAX): a float blamed the vectorised particles ("take_along_axis indices must be of
# integer type"); 5 gave NonFiniteError "every one of the 10 importance weights is zero"
@pytest.mark.parametrize("values", [[0.5, 1.0], [0, 5]], ids=["float", "out_of_range"])
def test_categorical_observation_outside_its_support_on_jax(values):
    with on_jax():
        import jax.numpy as jnp

        def jax_categorical(y):
            p = ppl.sample("p", dist.Dirichlet(jnp.ones(3)))
            with ppl.plate("data", len(y)):
                ppl.sample("y", dist.Categorical(p), obs=y)

        with pytest.raises(SiteError, match="site 'y': 1 of 2 observed values lie outside the support"):
            Importance(jax_categorical, num_particles=10).run(jnp.array(values))


# today (JAX): "unsupported operand type(s) for -: 'Tensor' and 'LinearizeTracer'" (VI), a
# ShapeError blaming the vectorised particles (Importance)
def test_a_torch_tensor_in_a_jax_model():
    with on_jax():
        jax_model, jax_guide = jax_programs()
        message = "site 'x': the observed value is a torch Tensor, but on the jax backend"
        with pytest.raises(SiteError, match=message):
            VI(jax_model, jax_guide).step(torch.tensor([0.5, 1.0]))
        with pytest.raises(SiteError, match=message):
            Importance(jax_model, num_particles=10).run(torch.tensor([0.5, 1.0]))


# ----------------------------------------------------------------- plates
def subsampled(x):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    with ppl.plate("data", len(x), subsample_size=10) as index:
        ppl.sample("x", dist.Normal(mu, 1.0), obs=x[index])


# today: Pyro's "subsample_size does not match len(subsample), 10 vs 3. Did you accidentally
# use different subsample_size in the model and guide?" (torch); ran silently (JAX)
def test_subsample_size_larger_than_the_plate():
    with pytest.raises(SiteError, match="plate 'data': subsample_size=10 must lie in 1 .. 3"):
        VI(subsampled, guide).step(X)
    with on_jax():
        import jax.numpy as jnp

        def jax_subsampled(x):
            mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
            with ppl.plate("data", len(x), subsample_size=10) as index:
                ppl.sample("x", dist.Normal(mu, 1.0), obs=x[index])

        _, jax_guide = jax_programs()
        with pytest.raises(SiteError, match="plate 'data': subsample_size=10 must lie in 1 .. 3"):
            VI(jax_subsampled, jax_guide).step(jnp.array([0.5, 1.0, 1.5]))


def nested(x):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    with ppl.plate("rows", 2, dim=-2), ppl.plate("data", len(x), dim=-1):
        ppl.sample("x", dist.Normal(mu, 1.0), obs=x)


# today: a ShapeError blaming the vectorised particles ("plates 'rows' and '_particles'
# collide ... runs with vectorize_particles=False"); on JAX an AssertionError
def test_max_plate_nesting_too_small():
    message = "max_plate_nesting=1, but plate 'rows' uses dim -2; it must be at least 2"
    with pytest.raises(ValueError, match="VI: " + message):
        VI(nested, guide, IWAE(4), max_plate_nesting=1).step(X)
    with pytest.raises(ValueError, match="Importance: " + message):
        Importance(nested, num_particles=4, max_plate_nesting=1).run(X)
    with on_jax():
        import jax.numpy as jnp

        def jax_nested(x):
            mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
            with ppl.plate("rows", 2, dim=-2), ppl.plate("data", len(x), dim=-1):
                ppl.sample("x", dist.Normal(mu, 1.0), obs=x)

        _, jax_guide = jax_programs()
        with pytest.raises(ValueError, match="VI: " + message):
            VI(jax_nested, jax_guide, IWAE(4), max_plate_nesting=1).step(jnp.array([0.5, 1.0]))


# ----------------------------------------------------------------- the guide against the model
def gamma_model(x):
    s = ppl.sample("s", dist.Gamma(2.0, 2.0))
    with ppl.plate("data", len(x)):
        ppl.sample("x", dist.Normal(0.0, s), obs=x)


def normal_guide(x):
    ppl.sample("s", dist.Normal(ppl.param("loc", torch.tensor(0.0)), 1.0))


# today: torch's "Expected parameter scale ... of distribution Normal" (the observed site's
# scale, not the guide); with validation off, NonFiniteError "no single site is non-finite;
# the objective overflowed" or the Gamma's log density, as the draw fell
@pytest.mark.parametrize("validate", [True, False])
def test_a_normal_guide_for_a_gamma_latent(validate):
    with pyro.validation_enabled(validate):
        with pytest.raises(SiteError, match="site 's': the guide draws it from Normal, whose support "
                                            "Real.. reaches outside the model's Gamma support"):
            VI(gamma_model, normal_guide).step(X)


# today (JAX): NonFiniteError "loss is nan at step 0: no single site is non-finite; the
# objective overflowed"
def test_a_normal_guide_for_a_gamma_latent_on_jax():
    with on_jax():
        import jax.numpy as jnp

        def jax_gamma(x):
            s = ppl.sample("s", dist.Gamma(2.0, 2.0))
            with ppl.plate("data", len(x)):
                ppl.sample("x", dist.Normal(0.0, s), obs=x)

        def jax_normal(x):
            ppl.sample("s", dist.Normal(ppl.param("loc", 0.0), 1.0))

        with pytest.raises(SiteError, match="site 's': the guide draws it from Normal"):
            VI(jax_gamma, jax_normal).step(jnp.array([0.5, 1.0]))


# today: a ShapeError blaming the vectorised particles ("Expected parameter scale ... Normal")
def test_a_proposal_whose_support_misses_the_priors():
    with pytest.raises(SiteError, match="site 's': the proposal draws it from Normal, whose support "
                                        "Real.. reaches outside the model's Gamma support"):
        Importance(gamma_model, normal_guide, num_particles=10).run(X)


def bounded_model(x):
    sigma = ppl.sample("sigma", dist.Uniform(0.0, 10.0))
    with ppl.plate("data", len(x)):
        ppl.sample("x", dist.Normal(0.0, sigma), obs=x)


def _transformed(base, *transforms):
    def guide(x):
        loc = ppl.param("loc", torch.tensor(0.0))
        ppl.sample("sigma", dist.TransformedDistribution(base(loc), list(transforms)))
    return guide


T = torch.distributions.transforms
BOUNDED_GUIDES = {  # Pyro's bounded-site guides: torch reports Real() as each one's support
    "biject_to(interval(0, 10))": _transformed(
        lambda loc: dist.Normal(loc, 1.0), torch.distributions.biject_to(constraints.interval(0.0, 10.0))),
    "sigmoid, then affine(0, 10)": _transformed(lambda loc: dist.Normal(loc, 1.0), T.SigmoidTransform(),
                                                T.AffineTransform(0.0, 10.0)),
    "Beta(2, 8) scaled by 10": _transformed(lambda loc: dist.Beta(2.0 + loc.exp(), 8.0),
                                            T.AffineTransform(0.0, 10.0)),
    "sigmoid, then affine(0, -1), then affine(10, 10)": _transformed(
        lambda loc: dist.Normal(loc, 1.0), T.SigmoidTransform(), T.AffineTransform(0.0, -1.0),
        T.AffineTransform(10.0, 10.0)),
}


# today: SiteError "... whose support Real() reaches outside the model's Uniform support"
@pytest.mark.parametrize("name", list(BOUNDED_GUIDES))
def test_a_transformed_guide_inside_a_bounded_site_trains(name):
    vi = VI(bounded_model, BOUNDED_GUIDES[name], optimizer=Adam(0.05))
    losses = vi.run(X, num_steps=30, progress=False)
    assert all(math.isfinite(loss) for loss in losses)


@pytest.mark.parametrize("transforms, match", [
    ((T.SigmoidTransform(), T.AffineTransform(0.0, 20.0)),
     r"draws it from Normal through SigmoidTransform, AffineTransform, whose values range over \(\S+, 20\), "
     "which reaches outside the model's Uniform"),
    ((T.ExpTransform(),), r"draws it from Normal through ExpTransform, whose values range over \(0, inf\)"),
    ((T.PowerTransform(1.0), T.AffineTransform(-5.0, 1.0)), r"drew -[45]\.\d+ from TransformedDistribution, "
                                                             "outside the model's Uniform"),
])
def test_a_transformed_guide_reaching_outside_a_bounded_site_is_refused(transforms, match):
    # a transform of unknown shape (PowerTransform) is judged by its draw: N(0, 0.01) - 5
    guide = _transformed(lambda loc: dist.Normal(loc, 0.01), *transforms)
    with pytest.raises(SiteError, match="site 'sigma': the guide " + match):
        VI(bounded_model, guide).step(X)


def test_a_transformed_guide_inside_a_bounded_site_trains_on_jax():
    with on_jax():
        import jax.numpy as jnp
        import numpyro.distributions as nd

        def guide(x):
            loc = ppl.param("loc", 0.0)
            ppl.sample("sigma", nd.TransformedDistribution(
                nd.Normal(loc, 1.0), nd.transforms.biject_to(nd.constraints.interval(0.0, 10.0))))

        def wide(x):
            loc = ppl.param("loc", 0.0)
            into = [nd.transforms.SigmoidTransform(), nd.transforms.AffineTransform(0.0, 20.0)]
            ppl.sample("sigma", nd.TransformedDistribution(nd.Normal(loc, 1.0), into))

        x = jnp.array([0.5, 1.0, -2.0])
        losses = VI(bounded_model, guide).run(x, num_steps=5, progress=False)
        assert all(math.isfinite(loss) for loss in losses)
        with pytest.raises(SiteError, match=r"site 'sigma': the guide draws it from Normal through "
                                            r"SigmoidTransform, AffineTransform, whose values range over "
                                            r"\(\S+, 20\), which reaches outside the model's Uniform"):
            VI(bounded_model, wide).step(x)


def plated_model(x):
    with ppl.plate("data", 5):
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        ppl.sample("x", dist.Normal(z, 1.0), obs=x)


def four_element_guide(x):
    with ppl.plate("data", 4):
        ppl.sample("z", dist.Normal(0.0, 1.0))


# today: "Shape mismatch inside plate('data') at site 'x'" (the observed site, not the guide);
# on JAX, the guide's plate size was forced on the model's plate, then "sub got incompatible
# shapes for broadcasting: (5,), (4,)"
def test_a_guide_plate_of_another_size():
    message = "site 'z': the guide's plate 'data' has size 4 but the model's has size 5"
    with pytest.raises(ShapeError, match=message):
        VI(plated_model, four_element_guide).step(torch.zeros(5))
    with on_jax():  # the same programs: the primitives resolve to NumPyro's at run time
        import jax.numpy as jnp

        with pytest.raises(ShapeError, match=message):
            VI(plated_model, four_element_guide).step(jnp.zeros(5))


# ----------------------------------------------------------------- parameters
# today: torch's "Expected parameter scale ... Normal(loc: 0.0, scale: nan)" (the store held
# log(-1)); on JAX numpyro's "Normal distribution got invalid scale parameter"
def test_a_parameter_initialised_outside_its_constraint():
    def positive_guide(x):
        scale = ppl.param("scale", torch.tensor(-1.0), constraint=constraints.positive)
        ppl.sample("mu", dist.Normal(0.0, scale))

    with pytest.raises(SiteError, match="param 'scale': the initial value -1.0 lies outside its "
                                        "constraint GreaterThan"):
        VI(model, positive_guide).step(X)
    with on_jax():
        import jax.numpy as jnp
        from numpyro.distributions import constraints as jax_constraints

        jax_model, _ = jax_programs()

        def jax_positive_guide(x):
            scale = ppl.param("scale", -1.0, constraint=jax_constraints.positive)
            ppl.sample("mu", dist.Normal(0.0, scale))

        with pytest.raises(SiteError, match="param 'scale': .*outside its constraint Positive"):
            VI(jax_model, jax_positive_guide).step(jnp.array([0.5, 1.0]))


# today: torch's "Expected parameter log_factor ... of distribution Unit(log_factor: nan)"
def test_nan_from_a_factor():
    def penalised(x):
        model(x)
        ppl.factor("penalty", torch.tensor(math.nan))

    with pytest.raises(NonFiniteError, match="site 'penalty' \\(a factor\\) has a NaN log density"):
        VI(penalised, guide).step(X)


# already clear on JAX (pinned): the NaN factor's site is named
def test_nan_from_a_factor_on_jax():
    with on_jax():
        import jax.numpy as jnp

        jax_model, jax_guide = jax_programs()

        def jax_penalised(x):
            jax_model(x)
            ppl.factor("penalty", jnp.nan)

        with pytest.raises(NonFiniteError, match="site 'penalty' in the model has a non-finite log density"):
            VI(jax_penalised, jax_guide).step(jnp.array([0.5, 1.0]))


class Regression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)
        with torch.no_grad():
            self.linear.weight.fill_(math.nan)

    def forward(self, x):
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        ppl.module("net", self)
        with ppl.plate("data", len(x)):
            ppl.sample("x", dist.Normal(self.linear(x.unsqueeze(-1)).squeeze(-1) + mu, 1.0), obs=x)


# today: torch's "Expected parameter loc (Tensor of shape (3,)) of distribution Normal"
# (no weight named); with validation off the observed site's log density was blamed
@pytest.mark.parametrize("validate", [True, False])
def test_nan_from_a_modules_weights(validate):
    with pyro.validation_enabled(validate):
        with pytest.raises(NonFiniteError, match=r"parameter 'net\$\$\$linear.weight'"):
            VI(Regression(), guide).step(X)


# ----------------------------------------------------------------- arguments
# today: "IWAE: num_particles must be a positive integer, got np.int64(4)"
def test_numpy_integers_are_integers():
    objective = IWAE(np.int64(4))
    assert objective.num_particles == 4 and type(objective.num_particles) is int
    assert math.isfinite(VI(model, guide, objective).step(X))
    assert GFlowNetEM(two_component, e_steps=np.int64(2), hidden=np.int64(8)).e_steps == 2


# today: Adam(lr=inf) was accepted (every parameter NaN after one step); Adam(lr="0.1")
# raised "'>' not supported between instances of 'str' and 'int'"
def test_learning_rate_checked():
    with pytest.raises(ValueError, match="Adam: lr \\(the learning rate\\) must be a finite positive "
                                         "number, got inf"):
        Adam(lr=math.inf)
    with pytest.raises(TypeError, match="Adam: lr \\(the learning rate\\) must be a number, got '0.1'"):
        Adam(lr="0.1")


# today: AttributeError "'Normal' object has no attribute 'logits'"
def test_gumbel_estimator_on_a_normal_site():
    with pytest.raises(SiteError, match="site 'mu': estimator 'gumbel' relaxes OneHotCategorical "
                                        "and Bernoulli sites, not Normal"):
        VI(model, guide, estimators={"mu": "gumbel"}).step(X)


def test_gumbel_estimator_on_a_model_site_it_cannot_relax():
    """The guide's site relaxes; the model's, masked, does not: the error names the site too."""
    probs = torch.tensor([0.3, 0.4, 0.3])

    def masked_model():
        ppl.sample("c", dist.OneHotCategorical(probs).mask(True))

    def one_hot_guide():
        ppl.sample("c", dist.OneHotCategorical(logits=ppl.param("logits", torch.zeros(3))))

    with pytest.raises(SiteError, match="site 'c': estimator 'gumbel' relaxes OneHotCategorical "
                                        "and Bernoulli sites, not MaskedDistribution"):
        VI(masked_model, one_hot_guide, estimators={"c": "gumbel"}).step()


# ----------------------------------------------------------------- evidence and interventions
def scm():
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    return ppl.sample("y", dist.Normal(2 * x, 1.0))


# today: IndexError "select(): index 5 out of range for tensor of size [2]"
@pytest.mark.parametrize("world", [5, -1])
def test_a_world_a_twin_counterfactual_does_not_have(world):
    with pytest.raises(ValueError, match=f"counterfactual: world must be an integer from 0 "
                                         f"\\(factual\\) to 1.*got {world}"):
        inference.counterfactual(scm, {"x": 1.0, "y": 3.0}, {"x": 0.0}, "y", world=world)


# today: torch's "Expected parameter loc ... Normal(loc: nan, ...)" from the child site
def test_do_with_nan():
    with pytest.raises(SiteError, match="do: site 'x' is given NaN"):
        inference.interventional(scm, {"x": math.nan}, "y", method="importance", num_particles=100)
    with pytest.raises(SiteError, match="counterfactual interventions: site 'x' is given NaN"):
        inference.counterfactual(scm, {"x": 1.0, "y": 3.0}, {"x": math.nan}, "y")


# ----------------------------------------------------------------- GFlowNet-EM
def two_component(x):
    with ppl.plate("data", len(x)):
        c = ppl.sample("c", dist.Categorical(torch.ones(2) / 2))
        ppl.sample("x", dist.Normal(torch.tensor([-2.0, 2.0])[c], 1.0), obs=x)


# today: RuntimeError "probability tensor contains either `inf`, `nan` or element < 0"
def test_gflownet_em_with_an_infinite_observation():
    with pytest.raises(NonFiniteError, match="site 'x' has a non-finite observed value; the policy "
                                             "reads the observations"):
        GFlowNetEM(two_component, hidden=8).step(torch.tensor([0.0, math.inf]))


class NaNPolicy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.full((2,), math.nan))
        self.log_z = torch.nn.Parameter(torch.zeros(()))

    def forward(self, features, state, step):
        return self.bias.expand(features.shape[0], 2)

    def log_partition(self, features):
        return self.log_z.expand(features.shape[0])


# today: RuntimeError "probability tensor contains either `inf`, `nan` or element < 0" when
# sampling; the greedy construction returned [0, 0] without a word
def test_gflownet_em_with_nan_logits():
    message = "the policy's logits at site 'c' are not finite"
    with pytest.raises(NonFiniteError, match=message):
        GFlowNetEM(two_component, policy=NaNPolicy()).step(torch.tensor([0.0, 1.0]))
    with pytest.raises(NonFiniteError, match=message):
        GFlowNetEM(two_component, policy=NaNPolicy()).greedy_posterior(torch.tensor([0.0, 1.0]))


# today: ZeroDivisionError "size cannot be zero"
def test_gflownet_em_with_empty_data():
    with pytest.raises(SiteError, match="plate 'data' has size 0"):
        GFlowNetEM(two_component, hidden=8).step(torch.tensor([]))


# ------------------------------------------------------- objects of the other backend
def test_a_distribution_of_the_other_backend_is_named_with_both_backends():
    pytest.importorskip("numpyro")
    import numpyro.distributions as numpyro_dist
    import pyro.distributions as pyro_dist

    def numpyro_in_torch():
        ppl.sample("z", numpyro_dist.Normal(0.0, 1.0))

    def pyro_in_jax():
        ppl.sample("z", pyro_dist.Normal(0.0, 1.0))

    with pytest.raises(SiteError, match="site 'z': its distribution Normal is numpyro's, for the jax "
                       "backend, but the program runs on the torch backend"):
        ppl.trace(numpyro_in_torch)()
    with ppl.backend("jax"), pytest.raises(SiteError, match="site 'z': its distribution Normal is "
                                           "pyro's, for the torch backend, but the program runs on the jax"):
        ppl.trace(pyro_in_jax)()


def test_a_torch_tensor_in_a_jax_program_is_named():
    pytest.importorskip("numpyro")
    import numpyro.distributions as numpyro_dist

    def model():
        z = ppl.sample("z", numpyro_dist.Normal(0.0, 1.0))
        ppl.sample("w", numpyro_dist.Normal(z + torch.tensor(1.0), 1.0))

    with ppl.backend("jax"), pytest.raises(SiteError, match="a torch tensor reached the jax backend's "
                                           "program after site 'z'.*jnp.asarray"):
        ppl.trace(model)()


def test_control_flow_on_a_traced_value_under_jit_names_the_site_and_the_fix():
    pytest.importorskip("numpyro")
    import jax.numpy as jnp

    def model():
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        loc = 1.0 if z > 0 else -1.0  # a Python branch on a value JAX traces
        ppl.sample("x", dist.Normal(loc, 1.0), obs=jnp.asarray(0.5))

    def guide():
        ppl.sample("z", dist.Normal(ppl.param("m", 0.0), 1.0))

    with ppl.backend("jax"), pytest.raises(SiteError, match="after site 'z' while JAX compiles.*jnp.where"):
        VI(model, guide).step()


# today: torch's "cannot sample n_sample <= 0 samples", ZeroDivisionError, a shape error,
# and networkx's "Input is not a known data type for conversion"
def test_a_draw_count_and_a_graph_are_named_when_wrong():
    with pytest.raises(ValueError, match="Importance.posterior: num_samples must be a positive integer, "
                                         "got 0"):
        Importance(two_component, num_particles=10).posterior(torch.tensor([0.0, 1.0]), num_samples=0)
    em = GFlowNetEM(two_component, hidden=8)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"GFlowNetEM.evaluate: num_samples must be a positive integer, "
                                             f"got {bad}"):
            em.evaluate(torch.tensor([0.0, 1.0]), num_samples=bad)
    with pytest.raises(ValueError, match="GFlowNetEM.posterior: num_samples must be a positive integer"):
        em.posterior(torch.tensor([0.0, 1.0]), num_samples=0)
    with pytest.raises(TypeError, match="identify: expected a causal graph, got the program 'two_component'; "
                                        "pass ppl.graph\\(two_component"):
        ppl.identify(two_component, "c", "x")


# today (JAX): ValueError "Incompatible shapes for broadcasting: shapes=[(3,), (5,)]",
# naming neither the site nor the plate (torch named both)
@pytest.mark.parametrize("strategy", ["VI", "Importance"])
def test_a_plate_smaller_than_its_data_is_named_on_both_backends(on_backend, strategy):
    ops = ppl.get_backend().ops

    def model(x):
        loc = ppl.sample("loc", dist.Normal(0.0, 1.0))
        with ppl.plate("data", 3):
            ppl.sample("x", dist.Normal(loc, 1.0), obs=x)

    def guide(x):
        ppl.sample("loc", dist.Normal(ppl.param("m", ops.asarray(0.0)), 1.0))

    x = ops.asarray([0.1, 0.2, 0.3, 0.4, 0.5])
    with pytest.raises(ShapeError, match=r"site 'x': cannot score a value of shape \(5,\) under Normal with "
                                         r"batch \+ event shape \(3,\); plates: 'data' \(dim -1, size 3\)"):
        if strategy == "VI":
            VI(model, guide).step(x)
        else:
            Importance(model, num_particles=10).run(x)
