"""Gaussian-process surrogate behind a small fit/predict interface.

BaMSOO (Wang, Shakibi, Jin and de Freitas, AISTATS 2014) needs a model that returns a posterior
mean and standard deviation at the centres of new nodes. :class:`Surrogate` is that interface,
and :class:`BoTorchGP` implements it with BoTorch's ``SingleTaskGP``. Any object with the same
``fit`` and ``predict`` methods can stand in for it.

torch, gpytorch and botorch are imported on the first ``fit``, never at import time, so that
``import optuna_fractal`` works without the ``bo`` extra.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import numbers
from typing import Any
from typing import Protocol
from typing import runtime_checkable

import numpy as np
import optuna


_logger = optuna.logging.get_logger(__name__)


class SurrogateFitError(RuntimeError):
    """Raised when a surrogate cannot be fitted to the data or its predictions are not finite.

    The caller is expected to log it and evaluate the objective for real instead of trusting
    the model.
    """


@runtime_checkable
class Surrogate(Protocol):
    """Regression model used by BaMSOO to bound the objective at unevaluated points.

    Inputs are points of the unit cube ``[0, 1]^d`` and values are to be maximised. The
    policy calls ``fit`` once per sampling decision and then ``predict`` on the centres of
    all candidate nodes.
    """

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        """Fit the model to ``x`` of shape ``(n, d)`` and finite ``y`` of shape ``(n,)``.

        Raises:
            SurrogateFitError: If the data are unusable or the fit failed.
        """
        ...

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the posterior mean and standard deviation at ``x``, both of shape ``(m,)``.

        Both are in the units of ``y``.

        Raises:
            SurrogateFitError: If no fit succeeded yet or the predictions are not finite.
        """
        ...


class BoTorchGP:
    """Exact Gaussian process from BoTorch, refitted with a warm start.

    The model is ``botorch.models.SingleTaskGP`` with BoTorch's default kernel and priors,
    ``Normalize`` on the inputs with the unit cube as fixed bounds, and ``Standardize`` on the
    outputs. It is fitted in float64 by ``botorch.fit.fit_gpytorch_mll`` on an
    ``ExactMarginalLogLikelihood``. Each ``fit`` starts from the hyperparameters of the
    previous successful fit when the dimension is unchanged, so that one fit per decision
    stays cheap and the hyperparameters move smoothly. A failed fit leaves those starting
    values as they were.

    ``predict`` returns the posterior of the latent function, without observation noise.
    :meth:`export_state` and :meth:`load_state` carry the warm start across processes.

    Determinism: the fit runs under ``torch.manual_seed(seed)`` inside a forked torch RNG, so the
    global torch RNG is left as it was. Two objects with the same seed that receive the same
    sequence of ``fit`` calls return identical predictions. With ``seed=None`` only the random
    restarts that BoTorch draws after a failed optimisation attempt are unseeded.

    Threads: torch uses all cores by default. Pass ``num_threads`` to run ``fit`` and
    ``predict`` with ``torch.set_num_threads(num_threads)``. The setting is process-wide while
    it lasts and is restored afterwards, so other threads that use torch at the same time see
    it too. With ``num_threads=None`` the thread count is never touched.

    Args:
        seed: Seed for torch's RNG during each fit. Defaults to ``None`` (unseeded).
        num_threads: Number of torch threads during ``fit`` and ``predict``, at least 1.
            Defaults to ``None`` (leave torch's setting alone).

    Raises:
        ImportError: On the first ``fit`` if torch, gpytorch or botorch is missing.

    Example:
        ```python
        import numpy as np
        from optuna_fractal._surrogate import BoTorchGP

        rng = np.random.default_rng(0)
        x = rng.random((12, 2))
        y = -np.sum((x - 0.3) ** 2, axis=1)
        gp = BoTorchGP(seed=0)
        gp.fit(x, y)
        mean, std = gp.predict(np.array([[0.3, 0.3], [0.9, 0.9]]))
        ```

    """

    def __init__(self, seed: int | None = None, *, num_threads: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an int or None, got {seed!r}.")
        if num_threads is not None:
            if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral):
                raise TypeError(f"num_threads must be an int or None, got {num_threads!r}.")
            if num_threads < 1:
                raise ValueError(
                    f"num_threads must be at least 1, got {num_threads}. Pass None to leave "
                    "torch's thread count unchanged."
                )
        self._seed = None if seed is None else int(seed)
        self._num_threads = None if num_threads is None else int(num_threads)
        self._model: Any = None
        self._dim: int | None = None
        # Hyperparameters of the last successful fit, used as the next fit's starting point.
        # Keys are parameter names such as "covar_module.raw_lengthscale".
        self._warm_state: dict[str, np.ndarray] | None = None
        self._warm_dim: int | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        """Fit the Gaussian process to ``x`` of shape ``(n, d)`` and ``y`` of shape ``(n,)``.

        Args:
            x: Points in the unit cube ``[0, 1]^d``.
            y: Finite values to maximise.

        Raises:
            ValueError: If the shapes do not match or ``x`` leaves the unit cube.
            SurrogateFitError: If there are fewer than 2 points, all ``y`` are equal, a value
                is not finite, BoTorch fails to fit, or the fitted model predicts non-finite
                values at the training points.
        """
        x_array, y_array = _validate_training_data(x, y)

        import torch

        # A failed fit must not leave an older model behind for predict() to use silently.
        self._model = None
        self._dim = None
        with self._torch_threads():
            model = self._fit_model(
                torch.from_numpy(x_array), torch.from_numpy(y_array).unsqueeze(-1)
            )
            mean, std = _posterior(model, torch.from_numpy(x_array))
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise SurrogateFitError(
                f"The Gaussian process fitted to {len(y_array)} points predicts non-finite "
                "values at its own training points, so its bounds cannot be trusted."
            )

        self._model = model
        self._dim = x_array.shape[1]
        self._warm_state = {
            name: parameter.detach().cpu().numpy().copy()
            for name, parameter in _hyperparameters(model).items()
        }
        self._warm_dim = x_array.shape[1]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the posterior mean and standard deviation of the latent function at ``x``.

        Args:
            x: Points of shape ``(m, d)`` in the unit cube, with ``d`` as in the last fit.

        Returns:
            ``(mean, std)``, each a float64 array of shape ``(m,)`` in the units of ``y``.

        Raises:
            ValueError: If ``x`` has the wrong shape or leaves the unit cube.
            SurrogateFitError: If the last ``fit`` failed or none was made, or if a
                prediction is not finite.
        """
        if self._model is None or self._dim is None:
            raise SurrogateFitError(
                "BoTorchGP has no fitted model: call fit() first, and do not predict after a "
                "fit that raised SurrogateFitError."
            )
        x_array = _validate_points(x, name="x")
        if x_array.shape[1] != self._dim:
            raise ValueError(
                f"x has {x_array.shape[1]} columns but the model was fitted in {self._dim} "
                "dimensions. Pass points with the same dimension as in fit()."
            )
        if x_array.shape[0] == 0:
            return np.empty(0), np.empty(0)

        import torch

        with self._torch_threads():
            mean, std = _posterior(self._model, torch.from_numpy(x_array))
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise SurrogateFitError(
                f"The Gaussian process predicted non-finite values at {x_array.shape[0]} "
                "points; refit it or evaluate these points for real."
            )
        return mean, std

    def export_state(self) -> dict[str, Any] | None:
        """Return the hyperparameters of the last successful fit as JSON-compatible data.

        Storing this dict and passing it to :meth:`load_state` of another ``BoTorchGP`` gives
        that object the same warm start, so a second process fitted on the same data with the
        same seed predicts exactly what this one would. Floats survive a round trip through
        ``json`` unchanged.

        Returns:
            ``{"dim": d, "hyperparameters": {name: nested lists}}``, or ``None`` before the
            first successful fit.
        """
        if self._warm_state is None or self._warm_dim is None:
            return None
        return {
            "dim": self._warm_dim,
            "hyperparameters": {name: value.tolist() for name, value in self._warm_state.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Use hyperparameters from :meth:`export_state` as the starting point of the next fit.

        A state that is not of that form is ignored with a warning, and the next fit starts
        from BoTorch's defaults, because a wrong starting point only costs fit time.

        Args:
            state: A dict returned by :meth:`export_state`, possibly after a JSON round trip.
        """
        try:
            dim = state["dim"]
            raw = state["hyperparameters"]
            if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
                raise ValueError(f"dim must be a positive int, got {dim!r}")
            if not isinstance(raw, dict) or not raw:
                raise ValueError("hyperparameters must be a non-empty dict")
            values = {
                str(name): np.asarray(value, dtype=np.float64) for name, value in raw.items()
            }
            if not all(np.all(np.isfinite(value)) for value in values.values()):
                raise ValueError("hyperparameters contain NaN or infinite values")
        except (KeyError, TypeError, ValueError) as error:
            _logger.warning(
                f"Ignoring a Gaussian-process state that BoTorchGP cannot use ({error}), so the "
                "next fit starts from BoTorch's default hyperparameters."
            )
            return
        self._warm_state = values
        self._warm_dim = dim

    def _load_hyperparameters(self, model: Any) -> None:
        import torch

        assert self._warm_state is not None
        parameters = _hyperparameters(model)
        if set(parameters) != set(self._warm_state) or any(
            tuple(parameters[name].shape) != self._warm_state[name].shape for name in parameters
        ):
            _logger.warning(
                "The stored Gaussian-process hyperparameters do not match the model's "
                f"parameters {sorted(parameters)}, so this fit starts from BoTorch's defaults."
            )
            return
        with torch.no_grad():
            for name, parameter in parameters.items():
                parameter.copy_(torch.from_numpy(self._warm_state[name]))

    def _fit_model(self, train_x: Any, train_y: Any) -> Any:
        from botorch.exceptions import ModelFittingError
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Normalize
        from botorch.models.transforms import Standardize
        from botorch.utils.sampling import manual_seed
        from gpytorch.mlls import ExactMarginalLogLikelihood
        import torch

        dim = train_x.shape[1]
        bounds = torch.stack(
            [torch.zeros(dim, dtype=torch.float64), torch.ones(dim, dtype=torch.float64)]
        )
        model = SingleTaskGP(
            train_x,
            train_y,
            input_transform=Normalize(d=dim, bounds=bounds),
            outcome_transform=Standardize(m=1),
        )
        if self._warm_state is not None and self._warm_dim == dim:
            self._load_hyperparameters(model)

        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        try:
            with manual_seed(self._seed):
                fit_gpytorch_mll(mll)
        # BoTorch raises ModelFittingError after its retries; linear-algebra failures in
        # gpytorch are RuntimeError subclasses (NotPSDError), and bad values raise ValueError.
        except (ModelFittingError, RuntimeError, ValueError) as error:
            raise SurrogateFitError(
                f"Fitting the Gaussian process to {train_x.shape[0]} points in {dim} "
                f"dimensions failed: {error}"
            ) from error
        model.eval()
        return model

    @contextlib.contextmanager
    def _torch_threads(self) -> Iterator[None]:
        if self._num_threads is None:
            yield
            return

        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self._num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


def _hyperparameters(model: Any) -> dict[str, Any]:
    """Return the trainable parameters that carry over between fits, by dotted name.

    They are the raw kernel, noise and mean parameters. The outcome transform is left out
    because its mean and scale belong to the data, and the priors and constraints are rebuilt
    from the dimension.
    """
    parameters = {}
    for prefix in ("covar_module", "likelihood", "mean_module"):
        for name, parameter in getattr(model, prefix).named_parameters():
            parameters[f"{prefix}.{name}"] = parameter
    return parameters


def _posterior(model: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.no_grad():
        posterior = model.posterior(x)
        mean = posterior.mean.squeeze(-1)
        std = posterior.variance.clamp_min(0.0).sqrt().squeeze(-1)
    return mean.cpu().numpy().astype(np.float64), std.cpu().numpy().astype(np.float64)


def _validate_points(x: np.ndarray, *, name: str) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n, d), got shape {array.shape}. Reshape a "
            "single point to (1, d)."
        )
    if array.shape[1] == 0:
        raise ValueError(f"{name} has 0 columns; the unit cube needs at least one dimension.")
    if not np.all(np.isfinite(array)):
        raise SurrogateFitError(f"{name} contains NaN or infinite coordinates.")
    if array.size > 0 and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(
            f"{name} must lie in the unit cube [0, 1]^d, but its coordinates span "
            f"[{array.min()}, {array.max()}]. Encode the points into the unit cube first."
        )
    return np.ascontiguousarray(array)


def _validate_training_data(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x_array = _validate_points(x, name="x")
    y_array = np.asarray(y, dtype=np.float64)
    if y_array.ndim != 1 or y_array.shape[0] != x_array.shape[0]:
        raise ValueError(
            f"y must have shape ({x_array.shape[0]},) to match x of shape {x_array.shape}, "
            f"got {y_array.shape}."
        )
    if y_array.shape[0] < 2:
        raise SurrogateFitError(
            f"A Gaussian process needs at least 2 points, got {y_array.shape[0]}."
        )
    if not np.all(np.isfinite(y_array)):
        n_bad = int(np.sum(~np.isfinite(y_array)))
        raise SurrogateFitError(
            f"y contains {n_bad} NaN or infinite values; drop those points before fitting."
        )
    if np.all(y_array == y_array[0]):
        raise SurrogateFitError(
            f"All {y_array.shape[0]} values of y equal {y_array[0]}, so the Gaussian process "
            "has no scale to fit."
        )
    return x_array, np.ascontiguousarray(y_array)
