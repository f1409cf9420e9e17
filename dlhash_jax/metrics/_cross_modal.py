"""Cross-modal retrieval: image queries against a text database, and the reverse."""

from __future__ import annotations

from typing import Mapping, Sequence

import jax

from dlhash_jax import codes
from dlhash_jax import conventions
from dlhash_jax.metrics._evaluate import evaluate_codes
from dlhash_jax.metrics._precision import mean_average_precision


def _check_cross_modal(query_codes, db_codes) -> tuple[dict, dict]:
    """Both code dicts as ``{"image": array, "text": array}``, with matching shapes."""
    modalities = conventions.MODALITIES
    checked = []
    for name, value in (("query_codes", query_codes), ("db_codes", db_codes)):
        if not isinstance(value, Mapping) or set(value) != set(modalities):
            got = sorted(value) if isinstance(value, Mapping) else type(value).__name__
            raise ValueError(
                f"{name} must be a dict with exactly the keys {list(modalities)} (the codes of "
                f"each modality), got {got}."
            )
        arrays = {m: codes.check_codes(value[m], f"{name}[{m!r}]") for m in modalities}
        image, text = arrays["image"].shape, arrays["text"].shape
        if image != text:
            raise ValueError(
                f"{name}['image'] and {name}['text'] must have the same shape (one code of the "
                f"same length per item in both modalities), got {image} and {text}."
            )
        checked.append(arrays)
    return checked[0], checked[1]


def cross_modal_map(
    query_codes: Mapping[str, jax.typing.ArrayLike],
    db_codes: Mapping[str, jax.typing.ArrayLike],
    query_labels: jax.typing.ArrayLike,
    db_labels: jax.typing.ArrayLike,
    topk: int | None = None,
    *,
    normalize: str = "retrieved",
    ties: str = "index",
    zero_relevant: str = "zero",
    seed: int = 0,
    chunk_size: int | None = None,
    _backend: str | None = None,
) -> dict[str, float]:
    """mAP of cross-modal retrieval in both directions (image→text and text→image).

    Each query and database item has an image code and a text code in one Hamming space.
    Image→text ranks the database's text codes by Hamming distance to each query's image code;
    text→image ranks the database's image codes by distance to each query's text code. Each
    direction is :func:`mean_average_precision` with the same switches; relevance is at least
    one shared label, so an item's label applies to both of its modalities.

    Args:
      query_codes: ``{"image": [Q, L], "text": [Q, L]}`` ±1 codes of the queries.
      db_codes: ``{"image": [N, L], "text": [N, L]}`` ±1 codes of the database.
      query_labels: ``[Q, C]`` multi-hot query labels.
      db_labels: ``[N, C]`` multi-hot database labels.
      topk, normalize, ties, zero_relevant, seed, chunk_size: as in
        :func:`mean_average_precision`.

    Returns:
      ``{"image_to_text": float, "text_to_image": float}``.

    Raises:
      ValueError: a code dict without exactly the keys ``"image"`` and ``"text"``, the two
        modalities of one dict with different shapes, or as :func:`mean_average_precision`.

    Examples:
      >>> q = {"image": np.array([[1, 1]]), "text": np.array([[-1, -1]])}
      >>> db = {"image": np.array([[-1, -1], [1, 1]]), "text": np.array([[1, -1], [1, 1]])}
      >>> cross_modal_map(q, db, [[1, 0]], [[0, 1], [1, 0]])
      {'image_to_text': 1.0, 'text_to_image': 0.5}
    """
    queries, database = _check_cross_modal(query_codes, db_codes)
    return {
        direction: mean_average_precision(
            queries[source], database[target], query_labels, db_labels, topk,
            normalize=normalize, ties=ties, zero_relevant=zero_relevant, seed=seed,
            chunk_size=chunk_size, _backend=_backend,
        )
        for direction, source, target in conventions.CROSS_MODAL_DIRECTIONS
    }


def evaluate_cross_modal(query_codes: Mapping[str, jax.typing.ArrayLike],
                         db_codes: Mapping[str, jax.typing.ArrayLike],
                         query_labels, db_labels, *, topk: Sequence[int] = (1000,),
                         ndcg_k: int = 100, radius: int = 2, ties: str = "index",
                         normalize: str = "retrieved", zero_relevant: str = "zero",
                         seed: int = 0, chunk_size: int | None = None,
                         _backend: str | None = None) -> dict:
    """:func:`evaluate_codes` for cross-modal retrieval, in both directions.

    Args:
      query_codes, db_codes, query_labels, db_labels: as in :func:`cross_modal_map`.
      topk, ndcg_k, radius, ties, normalize, zero_relevant, seed, chunk_size: as in
        :func:`evaluate_codes`.

    Returns:
      ``{"image_to_text": report, "text_to_image": report}``, each the dict
      :func:`evaluate_codes` returns for that direction (image queries against database texts,
      text queries against database images).

    Raises:
      ValueError: as :func:`cross_modal_map` or :func:`evaluate_codes`.
    """
    queries, database = _check_cross_modal(query_codes, db_codes)
    return {
        direction: evaluate_codes(
            queries[source], database[target], query_labels, db_labels, topk=topk,
            ndcg_k=ndcg_k, radius=radius, ties=ties, normalize=normalize,
            zero_relevant=zero_relevant, seed=seed, chunk_size=chunk_size, _backend=_backend,
        )
        for direction, source, target in conventions.CROSS_MODAL_DIRECTIONS
    }
