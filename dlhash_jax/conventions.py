"""Names shared across the library, defined once: modalities, retrieval directions, switches.

Protocol names live with the protocols (``dlhash_jax.data.PROTOCOLS``) and method names with the
recipes (``dlhash_jax.methods.RECIPES``); everything here is used by several layers.
"""

# The two input modalities of cross-modal data: inputs are ``{"image": ..., "text": ...}``.
IMAGE = "image"
TEXT = "text"
MODALITIES = (IMAGE, TEXT)

# Cross-modal retrieval directions: (name, query modality, database modality).
CROSS_MODAL_DIRECTIONS = (("image_to_text", IMAGE, TEXT), ("text_to_image", TEXT, IMAGE))
DIRECTION_NAMES = tuple(name for name, _, _ in CROSS_MODAL_DIRECTIONS)

# The evaluation switches of dlhash_jax.metrics (docs/design.md, "Evaluation protocol"): their
# names (fields of a run config's `evaluation` block) and each one's choices.
SWITCHES = ("ties", "normalize", "zero_relevant")
TIES = ("index", "random", "average")
NORMALIZE = ("retrieved", "total")
ZERO_RELEVANT = ("zero", "skip")
