"""Sentence-classification sets (``--data text:PATH``): the files of Kim (2014), "Convolutional Neural Networks for
Sentence Classification", and any file or folder of the same form.

A file holds one example per line, ``LABEL TOKENS...``: an integer label from 0, a space, the sentence. Each file is
read as UTF-8, or as Latin-1 when it is not valid UTF-8 (rt-polarity.all, subj.all and TREC.train.all hold Latin-1
bytes). Lines end at ``\\n`` only: a Latin-1 byte 0x85 is the character NEL, which ``str.splitlines`` would take for
a line end. Blank lines are skipped.

What ``PATH`` names (:func:`find_text_files`):

- a folder with ``train``, ``dev`` (or ``val``) and ``test`` files, each optionally ``.txt`` or ``.all``;
- a prefix or one of its files: ``DIR/stsa.binary`` or ``DIR/stsa.binary.train`` -> ``stsa.binary.{train,dev,test}``,
  ``DIR/TREC`` -> ``TREC.{train,test}.all``;
- any other file: a set for K-fold cross-validation (``rt-polarity.all``); fold ``k`` of ``n`` is the test split
  (``--fold k --folds n``, default 1 of 10), from a fixed permutation of the lines.

Without a dev file, a tenth of the training sentences is the dev split, by a fixed permutation, as Kim did ("we
randomly select 10% of the training data as the dev set"). The vocabulary comes from the training split alone
(:func:`build_vocab`): index 0 is ``<pad>``, 1 ``<unk>`` (every token the training split does not have).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from convzoo.data.datasets import fixed_split

PAD, UNK = "<pad>", "<unk>"
SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "val"), "test": ("test",)}
SUFFIXES = ("", ".txt", ".all")
FORMAT = "expected lines 'LABEL TOKENS...' with an integer LABEL from 0"


def tokenize(sentence: str) -> list[str]:
    """Kim's ``clean_str`` (CNN_sentence, process_data.py): keep letters, digits and ``(),!?'` ``, split off the
    clitics 's 've n't 're 'd 'll and the punctuation, lowercase. ``"It's n't!"`` -> ``["it", "'s", "n't", "!"]``."""
    text = re.sub(r"[^A-Za-z0-9(),!?'`]", " ", sentence)
    for clitic in ("'s", "'ve", "n't", "'re", "'d", "'ll"):
        text = text.replace(clitic, " " + clitic)
    for mark in ",!()?":
        text = text.replace(mark, f" {mark} ")
    return text.lower().split()


def decode(path: Path) -> str:
    """The text of ``path``: UTF-8, else Latin-1 (which decodes any bytes)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


@dataclass
class Examples:
    """Sentences (token lists), their labels and where each came from (``file`` line ``lines[i]``)."""

    file: Path
    sentences: list[list[str]]
    labels: list[int]
    lines: list[int]

    def take(self, index: Sequence[int]) -> Examples:
        return Examples(self.file, *([values[i] for i in index] for values in (self.sentences, self.labels,
                                                                               self.lines)))


def read_sentences(path: Path) -> Examples:
    """The examples of a ``LABEL TOKENS...`` file; a bad line is a ValueError naming the file and line."""
    if not path.is_file():
        raise FileNotFoundError(f"--data text: no such sentence file {path}")
    sentences, labels, lines = [], [], []
    for number, line in enumerate(decode(path).split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        label, _, sentence = line.partition(" ")
        try:
            value = int(label)
        except ValueError:
            raise ValueError(f"{path} line {number}: label {label[:20]!r} is not an integer; {FORMAT}") from None
        if value < 0:
            raise ValueError(f"{path} line {number}: label {value} is out of range; {FORMAT}")
        sentences.append(tokenize(sentence))
        labels.append(value)
        lines.append(number)
    if not sentences:
        raise ValueError(f"{path}: no sentences (the file is empty); {FORMAT}")
    return Examples(path, sentences, labels, lines)


def _first_file(candidates: Sequence[Path]) -> Path | None:
    return next((c for c in candidates if c.is_file()), None)


def find_text_files(path: Path) -> dict[str, Path]:
    """The files of ``--data text:PATH``: ``{"train", "dev"?, "test"?}`` of a split set, or ``{"all"}`` of a
    cross-validation set (see the module docstring)."""
    if path.is_dir():
        found = {split: _first_file([path / f"{name}{suffix}" for name in names for suffix in SUFFIXES])
                 for split, names in SPLIT_NAMES.items()}
        if found["train"] is None:
            raise FileNotFoundError(f"--data text:{path}: the folder has no train, train.txt or train.all file")
        return {split: file for split, file in found.items() if file is not None}
    prefix = path
    match = re.fullmatch(r"(.*)\.(train|dev|val|test)(\.txt|\.all)?", path.name)
    if match:
        prefix = path.with_name(match.group(1))
    found = {split: _first_file([prefix.with_name(f"{prefix.name}.{name}{suffix}") for name in names
                                 for suffix in SUFFIXES]) for split, names in SPLIT_NAMES.items()}
    if found["train"] is not None:
        return {split: file for split, file in found.items() if file is not None}
    if match or not path.is_file():
        raise FileNotFoundError(f"--data text:{path}: no such file, and no {prefix.name}.train[.txt|.all] beside it")
    return {"all": path}


def build_vocab(sentences: Sequence[Sequence[str]]) -> list[str]:
    """``[<pad>, <unk>, tokens...]``: every token of ``sentences`` (the training split), most frequent first, ties
    in alphabetical order (the same list whatever the order of the sentences)."""
    counts = Counter(token for sentence in sentences for token in sentence)
    return [PAD, UNK, *sorted(counts, key=lambda token: (-counts[token], token))]


def encode(sentences: Sequence[Sequence[str]], vocab: Sequence[str]) -> list[torch.Tensor]:
    """Token lists -> index tensors (int64 [L_i]); tokens outside ``vocab`` map to ``<unk>`` (1)."""
    index = {token: i for i, token in enumerate(vocab)}
    return [torch.tensor([index.get(token, 1) for token in sentence], dtype=torch.long) for sentence in sentences]


def pad_batch(sequences: Sequence[torch.Tensor], min_length: int = 1) -> torch.Tensor:
    """Index tensors [L_i] -> Tensor[B, L] int64, padded at the end with ``<pad>`` (0) to the longest one (at least
    ``min_length``)."""
    length = max(min_length, max((len(s) for s in sequences), default=0))
    batch = torch.zeros(len(sequences), length, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        batch[row, :len(sequence)] = sequence
    return batch


class TextDataset(Dataset):
    """Encoded sentences and labels; ``__getitems__`` returns a padded batch ``(Tensor[B, L] int64, Tensor[B])``,
    so the loader's ``collate_fn`` is :func:`convzoo.data.collate_batch` (the identity)."""

    def __init__(self, sequences: list[torch.Tensor], labels: torch.Tensor) -> None:
        if len(sequences) != len(labels):
            raise ValueError(f"{len(sequences)} sentences but {len(labels)} labels")
        self.sequences, self.labels = sequences, labels.long()

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_batch([self.sequences[i] for i in indices]), self.labels[torch.as_tensor(indices,
                                                                                             dtype=torch.long)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sequences[index], self.labels[index]


@dataclass
class TextSplits:
    """The splits of a sentence set and what the model and ``predict`` need: the vocabulary (``vocab[i]`` is the
    token of index ``i``), the number of classes, the longest training sentence (tokens)."""

    name: str
    train: TextDataset
    dev: TextDataset
    test: TextDataset
    vocab: list[str]
    num_classes: int
    max_length: int
    files: dict[str, str] = field(default_factory=dict)


def cv_folds(n: int, folds: int, seed: int = 0) -> list[torch.Tensor]:
    """``folds`` disjoint index tensors covering ``range(n)``: fold ``k`` is ``permutation[k::folds]`` of a fixed
    permutation (``seed``), so the sizes differ by at most one."""
    if not 2 <= folds <= n:
        raise ValueError(f"--folds must be between 2 and the {n} sentences, got {folds}")
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [permutation[k::folds].sort().values for k in range(folds)]


def load_text(path: str | Path, fold: int | None = None, folds: int | None = None) -> TextSplits:
    """The train/dev/test splits of ``--data text:PATH``; ``fold`` (1-based) of ``folds`` picks the test part of a
    cross-validation set (default 1 of 10) and must not be given for a set with a test file."""
    path = Path(path).expanduser()
    files = find_text_files(path)
    read = {split: read_sentences(file) for split, file in files.items()}
    if "all" in files:
        folds = 10 if folds is None else folds
        fold = 1 if fold is None else fold
        every = read.pop("all")
        parts = cv_folds(len(every.labels), folds)
        if not 1 <= fold <= folds:
            raise ValueError(f"--fold must be between 1 and --folds {folds}, got {fold}")
        test = parts[fold - 1]
        rest = torch.ones(len(every.labels), dtype=torch.bool)
        rest[test] = False
        read["train"], read["test"] = every.take(rest.nonzero()[:, 0].tolist()), every.take(test.tolist())
    elif fold is not None or folds is not None:
        raise ValueError(f"--fold/--folds: --data text:{path} has its own splits ({', '.join(files)}); folds are for "
                         "a single file of sentences (cross-validation)")
    if "test" not in read:
        raise FileNotFoundError(f"--data text:{path}: {files['train']} has no test file beside it "
                                f"(expected {files['train'].name.replace('train', 'test')})")
    if "dev" not in read:  # a tenth of train (Kim 2014, Sec. 3.3)
        train_index, dev_index = fixed_split(len(read["train"].labels), [0.1])
        read["dev"], read["train"] = read["train"].take(dev_index.tolist()), read["train"].take(train_index.tolist())
    num_classes = max(read["train"].labels) + 1
    for split in ("dev", "test"):
        examples = read[split]
        for label, line in zip(examples.labels, examples.lines):
            if label >= num_classes:
                raise ValueError(f"{examples.file} line {line}: label {label} is out of range: the training "
                                 f"sentences have labels 0..{num_classes - 1}")
    vocab = build_vocab(read["train"].sentences)
    datasets = {split: TextDataset(encode(examples.sentences, vocab), torch.tensor(examples.labels))
                for split, examples in read.items()}
    name = path.name if path.is_dir() else re.sub(r"(\.(train|dev|val|test))?(\.txt|\.all)?$", "", path.name)
    return TextSplits(name, datasets["train"], datasets["dev"], datasets["test"], vocab, num_classes,
                      max(len(s) for s in read["train"].sentences), {k: str(v) for k, v in files.items()})


def read_word_vectors(path: str | Path, vocab: Sequence[str]) -> tuple[dict[int, list[float]], int]:
    """({vocab index: vector} for the tokens of ``vocab`` found, dimension) of a word-vector text file: one
    ``WORD V1 ... VD`` per line (GloVe), optionally after a ``COUNT DIM`` header (word2vec's text format)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--word-vectors: no such file {path}")
    index = {token: i for i, token in enumerate(vocab)}
    found, dim = {}, None
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            parts = raw.decode("utf-8", errors="replace").rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec's header
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise ValueError(f"{path} line {number}: {len(parts) - 1} numbers, the first vector has {dim}; "
                                 "expected 'WORD V1 ... VD' lines")
            if parts[0] in index:
                try:
                    found[index[parts[0]]] = [float(v) for v in parts[1:]]
                except ValueError:
                    raise ValueError(f"{path} line {number}: the vector of {parts[0]!r} is not numbers") from None
    if dim is None:
        raise ValueError(f"--word-vectors {path}: no vectors; expected 'WORD V1 ... VD' lines")
    return found, dim


def word_vector_dim(path: str | Path) -> int:
    """The dimension of a word-vector text file (its first vector), without reading the rest."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--word-vectors: no such file {path}")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            parts = raw.decode("utf-8", errors="replace").rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue
            if len(parts) >= 2:
                return len(parts) - 1
    raise ValueError(f"--word-vectors {path}: no vectors; expected 'WORD V1 ... VD' lines")
