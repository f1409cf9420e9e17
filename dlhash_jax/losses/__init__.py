"""The loss catalogue of deep learning to hash (docs/design.md, survey §4).

Every term is a pure function of arrays (positional) and hyper-parameters (keyword-only) that
returns a float scalar and works under ``jit``, ``vmap`` and ``grad``. One name per line.
"""

# Code constraints, reconstruction, regularisers and graph terms (survey eq 1-13, 18).
from dlhash_jax.losses._code_constraints import balance_loss
from dlhash_jax.losses._code_constraints import decorrelation_loss
from dlhash_jax.losses._code_constraints import hash_constraint_clipped
from dlhash_jax.losses._code_constraints import hash_constraint_l1
from dlhash_jax.losses._code_constraints import hash_constraint_l2
from dlhash_jax.losses._code_constraints import quantization_loss
from dlhash_jax.losses._code_constraints import variance_loss
from dlhash_jax.losses._graph import bipartite_laplacian_loss
from dlhash_jax.losses._graph import kl_similarity_loss
from dlhash_jax.losses._graph import laplacian_loss
from dlhash_jax.losses._reconstruction import linear_decoder
from dlhash_jax.losses._reconstruction import reconstruction_loss
from dlhash_jax.losses._regularizers import kl_sparsity_loss
from dlhash_jax.losses._regularizers import l1_sparsity_loss
from dlhash_jax.losses._regularizers import weight_norm

# Pairwise, ranking and classification terms (survey eq 14-17, 19-27).
from dlhash_jax.losses._classification import hinge_softmax_loss
from dlhash_jax.losses._classification import linear_classification_loss
from dlhash_jax.losses._classification import multilabel_bce_loss
from dlhash_jax.losses._classification import softmax_loss
from dlhash_jax.losses._pairwise import between_within_loss
from dlhash_jax.losses._pairwise import contrastive_loss
from dlhash_jax.losses._pairwise import inner_product_loss
from dlhash_jax.losses._pairwise import pairwise_likelihood_loss
from dlhash_jax.losses._ranking import batch_triplet_loss
from dlhash_jax.losses._ranking import ndcg_pair_weights
from dlhash_jax.losses._ranking import ranking_loss
from dlhash_jax.losses._ranking import triplet_loss
from dlhash_jax.losses._greedy import hash_constraint_lp

# Terms of methods newer than the survey (docs/design.md, "Terms of methods newer than the
# survey"): DHN, DCH, DFH, DTSH, IDHN, DPN, OrthoHash, MIHash, JMLH, LCDSH, DBDH, DSDH, ADSH,
# GreedyHash (unsupervised), BiHalf, CIBHash, TBH.
from dlhash_jax.losses._adversarial import adversarial_loss
from dlhash_jax.losses._asymmetric import asymmetric_inner_product_loss
from dlhash_jax.losses._bernoulli import bernoulli_kl_loss
from dlhash_jax.losses._code_balance import code_balance_loss
from dlhash_jax.losses._contrastive import nt_xent_loss
from dlhash_jax.losses._contrastive import symmetric_bernoulli_kl_loss
from dlhash_jax.losses._cosine_margin import cosine_margin_loss
from dlhash_jax.losses._cosine_matching import cosine_similarity_matching_loss
from dlhash_jax.losses._discrete_classification import discrete_classification_loss
from dlhash_jax.losses._fisher import fisher_center_loss
from dlhash_jax.losses._fisher import margin_likelihood_loss
from dlhash_jax.losses._hamming_space import cauchy_cross_entropy_loss
from dlhash_jax.losses._hamming_space import cauchy_quantization_loss
from dlhash_jax.losses._locality import locality_constraint_loss
from dlhash_jax.losses._mutual_information import mutual_information_loss
from dlhash_jax.losses._polarization import polarization_loss
from dlhash_jax.losses._smooth_quantization import log_cosh_quantization_loss
from dlhash_jax.losses._soft_similarity import soft_similarity_loss
from dlhash_jax.losses._triplet_likelihood import triplet_likelihood_loss
