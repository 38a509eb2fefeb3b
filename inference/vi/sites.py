"""VI's set-up checks of the guide against the model, and the choice of the plates whose
elements get their own importance weights.

    >>> import torch, ppl, ppl.distributions as dist
    >>> from ppl.backends.torch import BACKEND
    >>> def model():
    ...     with ppl.plate("data", 3):
    ...         ppl.sample("z", dist.Normal(0.0, 1.0))
    >>> trace = BACKEND.run(model)
    >>> independent_plate("auto", trace, trace)
    (('data', -1),)
"""

from ppl.errors import SiteError

from ..program import independent_plates, warn_auxiliary


def independent_plate(option, model_tr, guide_tr):
    """The plates of per-element weights ((name, dim), ...) for VI's ``independent_plate``
    option (``"auto"``, a plate's name, or None), or None."""
    latent = list(guide_tr.latent.values()) + list(model_tr.latent.values())
    if option is None:
        return None
    if option == "auto":
        return independent_plates(latent, list(guide_tr) + list(model_tr)) or None
    for site in latent:
        for plate in site.plates:
            if plate.name == option:
                if not all(plate in s.plates for s in latent):
                    outside = [s.name for s in latent if plate not in s.plates]
                    raise ValueError(
                        f"independent_plate={option!r}: latent sites "
                        f"{outside} lie outside it, so weights cannot be per element")
                return ((plate.name, plate.dim),)
    raise ValueError(f"independent_plate={option!r}: no latent site lies in "
                     "a plate of that name")


def check_sites(model_tr, guide_tr, model_enum, objective, estimator_names):
    """The guide against the model: a guide site for every latent site the model does not
    enumerate, none for an observed one, auxiliary sites only where ``objective`` can score
    them, and ``estimator_names`` (the sites given an estimator) only guide sites."""
    model_latent = set(model_tr.latent)
    guide_latent = set(guide_tr.latent)
    for name in model_tr.latent:
        if name not in guide_latent and name not in model_enum:
            raise ValueError(
                f"the guide is missing latent site {name!r} of the model; every latent "
                f"site needs a guide site (guide sites: {sorted(guide_latent)})")
    for name, site in guide_tr.latent.items():
        if name not in model_tr.sites:
            if objective.sleep:
                raise SiteError(
                    f"guide site {name!r} is auxiliary (the model has no such site): "
                    f"{type(objective).__name__}'s sleep phase scores q(z | x) at z drawn "
                    "from the model, which draws no value for it, so q cannot be scored there "
                    "(an AutoGuide's sites would get density 0); use sleep=0, or a guide that "
                    "samples the model's sites directly", site=name)
            warn_auxiliary(name, site, model_tr)
            continue
        if name not in model_latent:
            raise ValueError(f"site {name!r} is observed in the model, so the guide may not sample it")
    for name in estimator_names:
        if name not in guide_latent:
            raise ValueError(
                f"estimators: the guide has no latent site {name!r} (its sites: "
                f"{sorted(guide_latent)})")
