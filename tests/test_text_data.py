"""The sentence reader of ``--data text:PATH``: encodings, the split layouts, cross-validation folds, the vocabulary,
and bad files ending as one line that names the file and line."""

from __future__ import annotations

import pytest
import torch

from convzoo.cli import main
from convzoo.data.text import (
    build_vocab,
    cv_folds,
    encode,
    find_text_files,
    load_text,
    pad_batch,
    read_sentences,
    read_word_vectors,
    tokenize,
)


def _write(path, lines, encoding="utf-8"):
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def test_kim_tokenizer_splits_clitics_and_punctuation():
    assert tokenize("It's n't good, (really)!") == ["it", "'s", "n't", "good", ",", "(", "really", ")", "!"]
    assert tokenize("Don't@#  you've?") == ["do", "n't", "you", "'ve", "?"]


def test_latin1_file_with_a_nel_byte_is_one_line_per_example(tmp_path):
    # 0x85 is NEL in Latin-1 (str.splitlines would cut there), 0xe9 is e-acute: not valid UTF-8
    path = tmp_path / "mixed.all"
    path.write_bytes(b"1 caf\xe9 \x85 great\n0 dull film\n")
    examples = read_sentences(path)
    assert examples.labels == [1, 0] and examples.lines == [1, 2]
    assert examples.sentences == [["caf", "great"], ["dull", "film"]]  # clean_str keeps ASCII letters only
    utf8 = _write(tmp_path / "utf8.all", ["1 naïve film", "", "0 bad"])  # a blank line is skipped
    assert read_sentences(utf8).sentences == [["na", "ve", "film"], ["bad"]]


def test_split_layouts(tmp_path):
    for split in ("train", "dev", "test"):
        _write(tmp_path / f"stsa.binary.{split}", [f"0 a {split}", f"1 b {split}"])
    expected = {split: tmp_path / f"stsa.binary.{split}" for split in ("train", "dev", "test")}
    assert find_text_files(tmp_path / "stsa.binary") == expected
    assert find_text_files(tmp_path / "stsa.binary.test") == expected
    trec = tmp_path / "trec"
    trec.mkdir()
    for split in ("train", "test"):
        _write(trec / f"TREC.{split}.all", [f"{i % 3} what {i}" for i in range(20)])
    assert find_text_files(trec / "TREC") == {"train": trec / "TREC.train.all", "test": trec / "TREC.test.all"}
    folder = tmp_path / "folder"
    folder.mkdir()
    _write(folder / "train.txt", ["0 x"])
    _write(folder / "val.txt", ["0 y"])
    _write(folder / "test", ["0 z"])
    assert find_text_files(folder) == {"train": folder / "train.txt", "dev": folder / "val.txt",
                                       "test": folder / "test"}
    assert find_text_files(tmp_path / "stsa.binary.dev") == expected
    splits = load_text(trec / "TREC")  # no dev file: a tenth of train (2 of 20)
    assert (len(splits.train), len(splits.dev), len(splits.test), splits.num_classes) == (18, 2, 20, 3)
    assert splits.name == "TREC"


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    for split, words in (("train", "good good bad"), ("dev", "good unseen"), ("test", "bad neverseen")):
        _write(tmp_path / f"s.{split}", [f"1 {words}", "0 bad"])
    splits = load_text(tmp_path / "s")
    assert splits.vocab == ["<pad>", "<unk>", "bad", "good"]  # by count, then alphabetically
    assert splits.dev.sequences[0].tolist() == [3, 1] and splits.test.sequences[0].tolist() == [2, 1]
    tokens, labels = splits.train.__getitems__([0, 1])  # padded at the end with <pad> = 0
    assert tokens.tolist() == [[3, 3, 2], [2, 0, 0]] and labels.tolist() == [1, 0]
    assert build_vocab([["b", "a"], ["a"]]) == ["<pad>", "<unk>", "a", "b"]
    assert encode([["a", "zz"]], ["<pad>", "<unk>", "a"])[0].tolist() == [2, 1]
    assert pad_batch([torch.tensor([5])], min_length=3).tolist() == [[5, 0, 0]]


def test_cross_validation_folds_are_deterministic_disjoint_and_cover(tmp_path):
    folds = cv_folds(23, 10)
    assert sorted(torch.cat(folds).tolist()) == list(range(23)) and {len(f) for f in folds} == {2, 3}
    assert all(torch.equal(a, b) for a, b in zip(folds, cv_folds(23, 10)))
    path = _write(tmp_path / "cv.all", [f"{i % 2} word{i}" for i in range(40)])
    tests = [load_text(path, fold=k, folds=4) for k in (1, 2, 3, 4)]
    held_out = [tuple(s.test.labels.tolist()) for s in tests]
    assert all(len(s.test) == 10 and len(s.train) + len(s.dev) == 30 and len(s.dev) == 3 for s in tests)
    words = [{s.vocab[i] for seq in t.test.sequences for i in seq.tolist()} for t, s in zip(tests, tests)]
    assert all(w == {"<unk>"} for w in words)  # each sentence's word is unique, so unseen in training
    assert load_text(path, fold=2, folds=4).test.labels.tolist() == list(held_out[1])
    assert len(load_text(path).test) == 4  # default: fold 1 of 10


def test_word_vector_files(tmp_path):
    glove = _write(tmp_path / "glove.txt", ["good 1 2 3", "bad -1 0.5 2"])
    word2vec = _write(tmp_path / "w2v.txt", ["2 3", "good 1 2 3", "other 0 0 0"])
    assert read_word_vectors(glove, ["<pad>", "<unk>", "good", "bad"]) == ({2: [1.0, 2.0, 3.0],
                                                                            3: [-1.0, 0.5, 2.0]}, 3)
    assert read_word_vectors(word2vec, ["<pad>", "<unk>", "good"]) == ({2: [1.0, 2.0, 3.0]}, 3)
    ragged = _write(tmp_path / "ragged.txt", ["good 1 2 3", "bad 1 2"])
    with pytest.raises(ValueError, match=r"ragged.txt line 2: 2 numbers, the first vector has 3"):
        read_word_vectors(ragged, ["good"])


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "empty.all").write_bytes(b"")
    _write(tmp_path / "word_label.all", ["0 fine", "pos not a number"])
    _write(tmp_path / "negative.all", ["0 fine", "1 ok", "-1 below zero"])
    for split, lines in (("train", ["0 a", "1 b"]), ("test", ["0 a", "7 out of range"])):
        _write(tmp_path / f"range.{split}", lines)
    _write(tmp_path / "lonely.train", ["0 a", "1 b"])
    _write(tmp_path / "lonely.all", ["0 a", "1 b", "0 c"])
    return tmp_path


@pytest.mark.parametrize(("name", "expected"), [
    ("empty.all", "empty.all: no sentences (the file is empty); expected lines 'LABEL TOKENS...'"),
    ("word_label.all", "word_label.all line 2: label 'pos' is not an integer"),
    ("negative.all", "negative.all line 3: label -1 is out of range"),
    ("range", "range.test line 2: label 7 is out of range: the training sentences have labels 0..1"),
    ("missing.all", "no such file, and no missing.all.train[.txt|.all] beside it"),
    ("missing.train", "no such file, and no missing.train[.txt|.all] beside it"),
    ("lonely", "lonely.train has no test file beside it"),
])
def test_bad_sentence_files_are_one_line(bad_files, capsys, name, expected):
    argv = ["train", "--model", "kim_cnn", "--data", f"text:{bad_files / name}", "--epochs", "1", "--threads", "1",
            "--no-progress", "--out", str(bad_files / "run")]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("convzoo train: error: ") and expected in lines[-1]
    assert not any("Traceback" in line for line in lines)


def test_fold_options_are_checked(bad_files):
    with pytest.raises(ValueError, match=r"--fold/--folds: --data text:.*range has its own splits"):
        load_text(bad_files / "range", fold=2)
    with pytest.raises(ValueError, match="--fold must be between 1 and --folds 2, got 3"):
        load_text(bad_files / "lonely.all", fold=3, folds=2)
