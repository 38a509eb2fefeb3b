"""Natural direct and indirect effects: nested counterfactuals, in which one world's
intervention reads the mediator's value in another world (``ppl.world``).

    NDE = E[Y(x1, M(x0))] - E[Y(x0)]        NIE = E[Y(x1)] - E[Y(x1, M(x0))]

so that NDE + NIE is the total effect E[Y(x1)] - E[Y(x0)]. On the linear mediation model
X -> M -> Y with X -> Y and unit coefficients, each is 1:

    >>> import ppl, ppl.distributions as dist
    >>> def mediation():
    ...     u_x, u_m, u_y = (ppl.sample(f"u_{v}", dist.Normal(0.0, 1.0)) for v in "xmy")
    ...     x = ppl.deterministic("X", u_x)
    ...     m = ppl.deterministic("M", x + u_m)
    ...     return ppl.deterministic("Y", x + m + u_y)
    >>> round(natural_direct_effect(mediation, "X", "M", "Y", num_particles=100).mean, 6)
    1.0
    >>> round(natural_indirect_effect(mediation, "X", "M", "Y", num_particles=100).mean, 6)
    1.0
"""

from ppl.causal import world, world_value

from .queries import counterfactual


def natural_direct_effect(model, treatment, mediator, outcome, *args, treated=1.0, control=0.0,
                          evidence=None, method="auto", num_particles=10_000, **kwargs):
    """E[Y(treated, M(control))] - E[Y(control)], as an :class:`Estimate` (``evidence``:
    in the factual world, for an effect on the units that showed it)."""
    worlds = [{treatment: control}, {treatment: treated, mediator: world(1)}]

    def direct(trace):
        return world_value(trace, outcome, 2) - world_value(trace, outcome, 1)

    return counterfactual(model, evidence or {}, worlds, direct, *args, worlds="multi",
                          method=method, num_particles=num_particles, **kwargs)


def natural_indirect_effect(model, treatment, mediator, outcome, *args, treated=1.0, control=0.0,
                            evidence=None, method="auto", num_particles=10_000, **kwargs):
    """E[Y(treated)] - E[Y(treated, M(control))], as an :class:`Estimate`."""
    worlds = [{treatment: control}, {treatment: treated, mediator: world(1)}, {treatment: treated}]

    def indirect(trace):
        return world_value(trace, outcome, 3) - world_value(trace, outcome, 2)

    return counterfactual(model, evidence or {}, worlds, indirect, *args, worlds="multi",
                          method=method, num_particles=num_particles, **kwargs)
