"""GFlowNet-EM's default policy on JAX, in Equinox: the fixed-order sampler's MLP, the
same network as torch's :class:`~inference.gflownet.policies.MLPPolicy`.

Equinox, not Flax: an Equinox module is a pytree of its arrays, so the sampler trains it
as the JAX engine trains any parameters (``backend.module_params`` splits the arrays off
and puts them back inside the compiled step), ``ppl.module`` registers one without an
init function or input shape, and checkpoints hold plain named arrays.

    >>> import jax, jax.numpy as jnp
    >>> policy = EquinoxMLPPolicy(feature_dim=1, state_dim=5, num_steps=2, max_support=3,
    ...                           hidden=8, key=jax.random.PRNGKey(0))
    >>> tuple(policy(jnp.zeros((4, 1)), jnp.zeros((4, 5)), step=0).shape)
    (4, 3)
    >>> tuple(policy.log_partition(jnp.zeros((4, 1))).shape)
    (4,)
"""

import equinox as eqx
import jax
import jax.numpy as jnp


class EquinoxMLPPolicy(eqx.Module):
    """Autoregressive policy: [x features, one-hot of the assigned slots, step] -> logits
    over the next slot's values; a second head gives log Z(x) and a third the log state
    flow log F(s) (for detailed and sub-trajectory balance)."""

    body: eqx.nn.MLP
    log_z: eqx.nn.MLP
    flow: eqx.nn.MLP
    num_steps: int = eqx.field(static=True)

    def __init__(self, feature_dim, state_dim, num_steps, max_support, hidden=64, *, key):
        inputs = feature_dim + state_dim + num_steps
        k_body, k_z, k_flow = jax.random.split(key, 3)
        self.num_steps = num_steps
        self.body = eqx.nn.MLP(inputs, max_support, hidden, depth=2, activation=jax.nn.relu, key=k_body)
        self.log_z = eqx.nn.MLP(feature_dim, "scalar", hidden, depth=1, activation=jax.nn.relu, key=k_z)
        self.flow = eqx.nn.MLP(inputs, "scalar", hidden, depth=1, activation=jax.nn.relu, key=k_flow)

    def _inputs(self, features, state, step):
        onehot = jnp.zeros((features.shape[0], self.num_steps), features.dtype).at[:, step].set(1.0)
        return jnp.concatenate([features, state, onehot], -1)

    def __call__(self, features, state, step):
        return jax.vmap(self.body)(self._inputs(features, state, step))

    def log_flow(self, features, state, step):
        if step == 0:
            return self.log_partition(features)  # the initial state's flow is Z(x)
        return jax.vmap(self.flow)(self._inputs(features, state, step))

    def log_partition(self, features):
        return jax.vmap(self.log_z)(features)
