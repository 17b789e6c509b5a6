"""Batched losses of the reference LSTM: K perturbed copies in one pass, sharing what the copies share.

The checker's reference model (``gradcheck.ReferenceLSTM``) calls three functions, each returning L for
every copy and equal to one :func:`lstm_ref.model.total_loss` call per copy to rounding:

- :func:`entry_losses` (:mod:`.entries`): copy k moves ONE parameter entry or sets ONE state tap entry;
  ``(K,)``.
- :func:`direction_losses_many` (:mod:`.directions`): copy k moves a whole block, or sets a whole tap
  ``(T, H)``, along a direction; many requests (the whole screen) in one batch; each result ``(K,)`` or
  ``(S, K)``. :func:`direction_losses` is its one-request case.

Structure exploited (see ``../shared/reference/checkers.md``): the four gate matrices are stacked into one
``W (4H, X+H)``. Perturbing ``W_*[r, c]`` by d only adds ``d * x_c(t)[c]`` to row r of that gate's
pre-activation, so at the first step a copy differs from the unperturbed pass in ONE entry of s and h; from
then on the copies run as one shared-weight GEMM ``(4H, H) @ (H, K)`` per step, the input part
``W_x x(t) + b`` computed once for all copies. A tap on a state at step t0 is the same with the copies
identical before t0.

Modules, each named after what it does (T steps, H hidden, X inputs, K copies):

- :mod:`.unperturbed`: the unperturbed pass (:class:`Unperturbed`, the ``u`` of every function here) and what
  the copies reuse from it, its tangent coefficients, and :class:`UnperturbedCache` (= ``BaseCache``).
- :mod:`.kernels`: the stacked layout (one copy per column: ``(4H, K)``, ``(H, K)``), the scaled activations,
  the cell step, the per-step loss, per-thread scratch and the recurrent GEMM.
- :mod:`.param_entries`: where a single parameter entry's move enters the stacked pre-activations.
- :mod:`.entries`: :func:`entry_losses`, single-entry perturbations in real (or general complex) arithmetic.
- :mod:`.tangents`: the complex step as dual numbers (``|Im d| <= DUAL_MAX_STEP``), for entries and
  directions.
- :mod:`.direction_batch`: the screen's batch layout (which copy sits in which column, from which step).
- :mod:`.directions`: :func:`direction_losses_many` and :func:`direction_losses`.
"""

from .directions import direction_losses, direction_losses_many
from .entries import entry_losses
from .tangents import DUAL_MAX_STEP
from .unperturbed import BaseCache, Unperturbed, UnperturbedCache

__all__ = [
    "DUAL_MAX_STEP",
    "BaseCache",
    "Unperturbed",
    "UnperturbedCache",
    "direction_losses",
    "direction_losses_many",
    "entry_losses",
]
