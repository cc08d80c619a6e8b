"""The sentence CNN of Kim (2014), "Convolutional Neural Networks for Sentence Classification", EMNLP.

Sec. 2 and 3.1 of the paper: word vectors of dimension k = 300 (an ``embedding``), filter windows h = 3, 4, 5 with 100
feature maps each, ReLU, max-over-time pooling, dropout p = 0.5 on the 300 pooled features, a softmax layer with the
max-norm constraint ||w||_2 <= s = 3 on its weight vectors (:func:`max_norm_`, applied after every update as in the
paper: "rescaling w to have ||w||_2 = s whenever ||w||_2 > s after a gradient descent step"); Adadelta, mini-batches
of 50 (the text task's defaults). The variants of Sec. 3.2 (``embeddings``):

- ``rand``: every word vector randomly initialized and trained (CNN-rand);
- ``static``: the vectors loaded from a word-vector file and kept fixed (CNN-static);
- ``non-static``: loaded and fine-tuned (CNN-non-static);
- ``multichannel``: two channels, a static and a fine-tuned copy; "each filter is applied to both channels and the
  results are added". Convolution is linear, so the filter is applied once to the sum of the two channels' vectors;
  the bias is added once (Kim's code adds it once too), which the same trained model gives either way.

Input: token indices Tensor[N, L] or Tensor[N, 1, L] int64, 0 = ``<pad>`` (its vector is zero and never trained, as
Kim's code resets it after each update). Wide convolution: ``h_max - 1`` pad vectors before each sentence, as Kim's
code pads (``get_idx_from_sent``, ``pad = filter_h - 1``), and ``h_max`` after it, so every sentence, however long
and whatever the batch's padding, also sees one all-padding window of each width (Kim pads to the longest sentence of
the data set, so nearly every sentence does there): the logits do not depend on the batch.

Initialization as Kim's code (``conv_net_sentence.py``, ``conv_net_classes.py``): word vectors U(-0.25, 0.25), the
filters Glorot uniform (PyTorch's ``xavier_uniform_``; Kim's fan-out divides by the pooling region, a deviation of
about 0.7x in the bound), their biases and the softmax layer zero.

Parameters for a vocabulary of V tokens (``<pad>`` and ``<unk>`` included), k = 300, K classes:
embedding V * 300 (twice for ``multichannel``); filters 300 * 100 * (3 + 4 + 5) + 3 * 100 = 360,300; softmax
300 * K + K. V = 10,000, K = 2: 3,000,000 + 360,300 + 602 = 3,360,902 (6,360,902 multichannel).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.models.base import Classifier, FeatureInfo
from convzoo.registry import register_model

EMBEDDINGS = ("rand", "static", "non-static", "multichannel")


@torch.no_grad()
def max_norm_(weight: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Rescale, in place, each row of ``weight`` (Tensor[K, D]: one row per output unit) whose L2 norm exceeds
    ``max_norm`` to norm ``max_norm`` (Kim 2014, Sec. 2.1; Hinton et al. 2012); other rows stay. Returns it."""
    norms = weight.norm(dim=1, keepdim=True)
    weight.mul_(norms.clamp(max=max_norm) / norms.clamp(min=1e-12))
    return weight


class KimCNN(Classifier):
    """Kim's CNN for sentences of token indices from a vocabulary of ``vocab_size`` tokens (see the module
    docstring); ``pretrained`` (Tensor[vocab_size, embedding_dim]) sets the word vectors of every channel."""

    ndim = 1
    in_chans = 1
    first_conv = None
    classifier_name = "fc"
    input_dtype = torch.long  # what ``convzoo.summary`` feeds: token indices

    def __init__(self, *, num_classes: int = 2, vocab_size: int = 10_000, embedding_dim: int = 300,
                 windows: Sequence[int] = (3, 4, 5), maps: int = 100, dropout: float = 0.5, embeddings: str = "rand",
                 max_norm: float | None = 3.0, ndim: int = 1, in_chans: int = 1) -> None:
        super().__init__()
        if embeddings not in EMBEDDINGS:
            raise ValueError(f"embeddings must be one of {', '.join(EMBEDDINGS)}, got {embeddings!r}")
        if ndim != 1 or in_chans != 1:
            raise ValueError(f"kim_cnn reads sentences (token indices [N, L]): ndim and in_chans must be 1, got "
                             f"ndim={ndim}, in_chans={in_chans}")
        if vocab_size < 2 or embedding_dim < 1 or maps < 1 or not windows or min(windows) < 1:
            raise ValueError(f"kim_cnn needs vocab_size >= 2 (<pad>, <unk>), positive sizes and windows, got "
                             f"vocab_size={vocab_size}, embedding_dim={embedding_dim}, maps={maps}, "
                             f"windows={list(windows)}")
        if max_norm is not None and not max_norm > 0:
            raise ValueError(f"max_norm must be positive or None, got {max_norm}")
        self.num_classes, self.embeddings, self.max_norm = num_classes, embeddings, max_norm
        self.windows = tuple(int(h) for h in windows)
        self.num_features = maps * len(self.windows)
        self.default_input_size = (1, 40)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        # the static channel of ``multichannel`` (a fixed copy); ``static`` freezes the one channel instead
        self.static_embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0) \
            if embeddings == "multichannel" else None
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, maps, h) for h in self.windows)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        self.feature_info = [FeatureInfo("convs", self.num_features, 1)]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for table in self.word_vector_tables():
            nn.init.uniform_(table.weight, -0.25, 0.25)
            with torch.no_grad():
                table.weight[0].zero_()
        for conv in self.convs:
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        if self.static_embedding is not None:
            self.static_embedding.weight.requires_grad_(False)
        if self.embeddings == "static":
            self.embedding.weight.requires_grad_(False)

    def word_vector_tables(self) -> list[nn.Embedding]:
        return [self.embedding] + ([self.static_embedding] if self.static_embedding is not None else [])

    @torch.no_grad()
    def load_word_vectors(self, vectors: dict[int, Sequence[float]]) -> int:
        """Set the rows ``{vocab index: vector}`` of every channel (the others keep U(-0.25, 0.25)); the count set."""
        dim = self.embedding.embedding_dim
        for index, vector in vectors.items():
            if len(vector) != dim:
                raise ValueError(f"word vectors have {len(vector)} numbers, the embedding {dim}")
            for table in self.word_vector_tables():
                table.weight[index] = torch.as_tensor(vector, dtype=table.weight.dtype)
        return len(vectors)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dtype not in (torch.int64, torch.int32) or x.dim() not in (2, 3) or (x.dim() == 3 and x.shape[1] != 1):
            raise ValueError(f"KimCNN expects token indices of shape [N, L] or [N, 1, L] (int64), got {x.dtype} of "
                             f"shape {list(x.shape)}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Token indices [N, (1,) L] -> the max-over-time features Tensor[N, maps * len(windows)]."""
        tokens = x.flatten(1)
        vectors = self.embedding(tokens)  # (N, L, k)
        if self.static_embedding is not None:
            vectors = vectors + self.static_embedding(tokens)
        widest = max(self.windows)
        vectors = F.pad(vectors.transpose(1, 2), (widest - 1, widest))  # (N, k, widest - 1 + L + widest)
        return torch.cat([F.relu(conv(vectors)).amax(dim=2) for conv in self.convs], dim=1)  # (N, 100 * 3)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(x)
        return x if pre_logits else self.fc(x)

    def apply_max_norm(self) -> None:
        """The paper's constraint on the softmax layer's weight rows, after an optimizer step (no-op if None)."""
        if self.max_norm is not None:
            max_norm_(self.fc.weight, self.max_norm)


@register_model(kind="text_classifier")
def kim_cnn(**kwargs) -> KimCNN:
    """Kim (2014): word vectors (k = 300), filter windows 3, 4, 5 x 100 maps, ReLU, max-over-time pooling, dropout
    0.5, max-norm 3 on the softmax weights; 3,360,902 parameters for 10,000 tokens and 2 classes (V * 300 + 360,300 +
    301 * K)."""
    return KimCNN(**kwargs)
