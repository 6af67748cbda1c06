#!/usr/bin/env python3
"""Reference values for Flora's evaluation metrics (Flora.Metrics: SacreBleu, Rouge, PorterStemmer).

Reads the cases of tests/Flora.Tests/Metrics/metric_cases.json (the same file the C# tests read), computes
each one with the real packages and compares with the 'expected' values stored there, which the C# tests assert:

  - tokenize_13a: sacrebleu's Tokenizer13a on one line;
  - bleu: sacrebleu.metrics.BLEU() with its defaults, corpus_score(hypotheses, [references]): the score line
    (str(score)), score, precisions, brevity penalty, ratio, lengths, counts, totals and signature;
  - sentence_bleu: sacrebleu.sentence_bleu(hypothesis, [reference]) (effective order on), the same fields, the
    signature of BLEU(effective_order=True), and a check that the two agree;
  - rouge (only if rouge_score is importable): rouge_scorer.RougeScorer(['rouge1', 'rouge2', 'rougeL'],
    use_stemmer=stem).score(target, prediction), and the tokens of the default tokenizer;
  - rouge_corpus (likewise): the arithmetic mean of the per-pair precision, recall and F-measure;
  - the Porter stemmer fixture porter_nltk.txt.gz (only if nltk is importable): NLTK's stem of every word.

Needs Python 3 with sacrebleu (2.x); rouge_score and nltk are optional. Prints one line per case, 'ok' or
'DIFF' with both values, and exits with status 1 if anything differs.

Usage:
  python3 bench/metrics_reference.py              # compare
  python3 bench/metrics_reference.py --update     # rewrite the expected values from the installed packages
  python3 bench/metrics_reference.py --cases PATH # another cases file
"""
import argparse
import gzip
import json
import math
import os
import sys

import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

try:
    from rouge_score import rouge_scorer
    try:
        from rouge_score import tokenizers as rouge_tokenizers
    except ImportError:  # releases before 0.1.0 tokenize in rouge_score.tokenize only
        rouge_tokenizers = None
    from rouge_score import tokenize as rouge_tokenize
except ImportError:
    rouge_scorer = None

try:
    import nltk
    from nltk.stem.porter import PorterStemmer
except ImportError:
    nltk = None

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CASES = os.path.join(HERE, os.pardir, "tests", "Flora.Tests", "Metrics", "metric_cases.json")
REPRODUCED_SACREBLEU = "2.6.0"

# Absolute tolerances for floats; BLEU's log sum may differ in the last bit between Python versions
# (Python 3.12's sum() compensates rounding), and the corpus means likewise.
BLEU_TOLERANCE = 1e-9
ROUGE_TOLERANCE = 1e-12


class Report:
    def __init__(self):
        self.failures = 0
        self.checked = 0

    def check(self, section, name, problems):
        self.checked += 1
        if problems:
            self.failures += 1
            print(f"DIFF {section}: {name}")
            for p in problems:
                print(f"       {p}")
        else:
            print(f"ok   {section}: {name}")


def close(a, b, tol):
    return a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=0, abs_tol=tol))


def compare_fields(expected, actual, tolerances):
    """Lists the fields whose values differ (floats within their tolerance count as equal)."""
    problems = []
    for key, value in actual.items():
        if key not in expected:
            problems.append(f"{key}: no expected value; actual {value!r}")
            continue
        want = expected[key]
        tol = tolerances.get(key, 0.0)
        if isinstance(value, list) and isinstance(want, list):
            same = len(value) == len(want) and all(close(w, v, tol) for w, v in zip(want, value))
        else:
            same = close(want, value, tol)
        if not same:
            problems.append(f"{key}: expected {want!r}, actual {value!r}")
    return problems


def tokenize_13a_actual(case, tokenizer):
    return {"tokens": tokenizer(case["input"])}


def bleu_actual(case):
    bleu = BLEU()
    score = bleu.corpus_score(case["hypotheses"], [case["references"]])
    return {
        "line": str(score),
        "score": float(score.score),
        "precisions": [float(p) for p in score.precisions],
        "bp": float(score.bp),
        "ratio": float(score.ratio),
        "sys_len": int(score.sys_len),
        "ref_len": int(score.ref_len),
        "counts": [int(c) for c in score.counts],
        "totals": [int(t) for t in score.totals],
        "signature": str(bleu.get_signature()),
    }


def sentence_bleu_actual(case):
    score = sacrebleu.sentence_bleu(case["hypothesis"], [case["reference"]])
    metric = BLEU(effective_order=True)
    again = metric.sentence_score(case["hypothesis"], [case["reference"]])
    if abs(float(again.score) - float(score.score)) > 1e-12:
        raise RuntimeError(f"{case['name']}: sentence_bleu {score.score} but BLEU(effective_order=True).sentence_score {again.score}")
    return {
        "line": str(score),
        "score": float(score.score),
        "precisions": [float(p) for p in score.precisions],
        "bp": float(score.bp),
        "ratio": float(score.ratio),
        "sys_len": int(score.sys_len),
        "ref_len": int(score.ref_len),
        "counts": [int(c) for c in score.counts],
        "totals": [int(t) for t in score.totals],
        "signature": str(metric.get_signature()),
    }


def rouge_tokens(text, stem):
    if rouge_tokenizers is not None:
        return list(rouge_tokenizers.DefaultTokenizer(use_stemmer=stem).tokenize(text))
    return list(rouge_tokenize.tokenize(text, PorterStemmer() if stem else None))


def rouge_pair(target, prediction, stem):
    scores = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=stem).score(target, prediction)
    return {k: [float(v.precision), float(v.recall), float(v.fmeasure)] for k, v in scores.items()}


def rouge_actual(case):
    result = {
        "target_tokens": rouge_tokens(case["target"], case["stem"]),
        "prediction_tokens": rouge_tokens(case["prediction"], case["stem"]),
    }
    result.update(rouge_pair(case["target"], case["prediction"], case["stem"]))
    return result


def rouge_corpus_actual(case):
    per_pair = [rouge_pair(t, p, case["stem"]) for t, p in zip(case["targets"], case["predictions"])]
    n = len(per_pair)
    result = {"pairs": n}
    for key in ("rouge1", "rouge2", "rougeL"):
        result[key] = [sum(s[key][i] for s in per_pair) / n for i in range(3)]
    return result


def check_porter(report, cases_path):
    path = os.path.join(os.path.dirname(os.path.abspath(cases_path)), "porter_nltk.txt.gz")
    if nltk is None:
        print("skip porter: nltk is not importable")
        return
    if not os.path.exists(path):
        print(f"skip porter: {path} not found")
        return
    stemmer = PorterStemmer()
    problems = []
    words = 0
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            word, stem = line.rstrip("\n").split(" ")
            words += 1
            actual = stemmer.stem(word)
            if actual != stem:
                problems.append(f"{word}: fixture {stem!r}, nltk {actual!r}")
    report.check("porter", f"{words} words of porter_nltk.txt.gz against nltk {nltk.__version__}", problems[:50])


def main(args):
    with open(args.cases, encoding="utf-8") as f:
        doc = json.load(f)

    print(f"python {sys.version.split()[0]}, sacrebleu {sacrebleu.__version__} (Flora reproduces {REPRODUCED_SACREBLEU}), "
          f"rouge_score {'available' if rouge_scorer else 'NOT importable: rouge cases skipped'}, "
          f"nltk {nltk.__version__ if nltk else 'NOT importable'}")
    if not sacrebleu.__version__.startswith("2."):
        print("warning: Flora reproduces SacreBLEU 2.x; this is another major version")

    report = Report()
    tokenizer = Tokenizer13a()
    sections = [
        ("tokenize_13a", lambda c: tokenize_13a_actual(c, tokenizer), {}),
        ("bleu", bleu_actual, {"score": BLEU_TOLERANCE, "precisions": BLEU_TOLERANCE, "bp": BLEU_TOLERANCE, "ratio": BLEU_TOLERANCE}),
        ("sentence_bleu", sentence_bleu_actual, {"score": BLEU_TOLERANCE, "precisions": BLEU_TOLERANCE, "bp": BLEU_TOLERANCE, "ratio": BLEU_TOLERANCE}),
        ("rouge", rouge_actual, {"rouge1": ROUGE_TOLERANCE, "rouge2": ROUGE_TOLERANCE, "rougeL": ROUGE_TOLERANCE}),
        ("rouge_corpus", rouge_corpus_actual, {"rouge1": ROUGE_TOLERANCE, "rouge2": ROUGE_TOLERANCE, "rougeL": ROUGE_TOLERANCE}),
    ]
    for section, compute, tolerances in sections:
        if section.startswith("rouge") and rouge_scorer is None:
            print(f"skip {section}: rouge_score is not importable")
            continue
        for case in doc.get(section, []):
            actual = compute(case)
            label = case["name"] + (f" (stem={case['stem']})" if "stem" in case else "")
            if section in ("bleu", "sentence_bleu"):
                print(f"     {section}: {label}: {actual['line']} | counts {actual['counts']} totals {actual['totals']}")
            if args.update:
                case["expected"] = actual
                continue
            expected = dict(case.get("expected", {}))
            if section in ("bleu", "sentence_bleu") and "signature" in expected and sacrebleu.__version__ != REPRODUCED_SACREBLEU:
                # Only the version part of the signature may differ between 2.x releases.
                strip = lambda s: s.rsplit("|version:", 1)[0]
                if strip(expected["signature"]) == strip(actual["signature"]):
                    expected["signature"] = actual["signature"]
            report.check(section, label, compare_fields(expected, actual, tolerances))

    if args.update:
        with open(args.cases, "w", encoding="utf-8", newline="\n") as f:
            json.dump(doc, f, ensure_ascii=True, indent=1)
            f.write("\n")
        print(f"wrote the expected values to {os.path.normpath(args.cases)}")
        return 0

    check_porter(report, args.cases)
    print(f"{report.checked} checks, {report.failures} with differences")
    return 1 if report.failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=DEFAULT_CASES, help="the cases file (default: %(default)s)")
    parser.add_argument("--update", action="store_true", help="rewrite the expected values instead of comparing")
    sys.exit(main(parser.parse_args()))
