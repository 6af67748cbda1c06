#!/usr/bin/env python3
"""Writes data/unicode/normalization.txt.gz, the Unicode tables Flora's NFC/NFD/NFKC/NFKD normalizer needs
(Flora.Data.Tokenizers.UnicodeNormalization): the library runs with invariant globalization, where .NET's
string.Normalize does not normalize. Made from Python's unicodedata (its Unicode version is written in the file).

Lines:  c FIRST LAST CCC      code points FIRST..LAST have canonical combining class CCC (> 0)
        d CP X [Y ...]        CP has the canonical decomposition X Y ... (one level; CP is not a primary composite)
        p CP X Y              CP has the canonical decomposition X Y and is a primary composite (NFC composes X Y to CP)
        k CP X [Y ...]        CP has the compatibility decomposition X Y ... (one level)
Hangul syllables are decomposed and composed by their algorithm and are not listed. All numbers are hexadecimal
except CCC.
"""
import gzip, pathlib, sys, unicodedata

root = pathlib.Path(__file__).resolve().parent.parent
out = root / "data" / "unicode" / "normalization.txt.gz"

lines = [f"# Unicode {unicodedata.unidata_version} normalization data, from Python {sys.version.split()[0]}'s unicodedata "
         "by scripts/make_unicode_normalization.py"]
run = None
for cp in range(0x110000 + 1):
    ccc = unicodedata.combining(chr(cp)) if cp < 0x110000 else 0
    if run and (ccc != run[2] or cp != run[1] + 1):
        lines.append(f"c {run[0]:X} {run[1]:X} {run[2]}")
        run = None
    if ccc:
        run = (run[0], cp, ccc) if run else (cp, cp, ccc)
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF:
        continue
    d = unicodedata.decomposition(chr(cp))
    if not d:
        continue
    parts = d.split()
    if parts[0].startswith("<"):
        lines.append("k %X %s" % (cp, " ".join(p.lstrip("0") or "0" for p in parts[1:])))
        continue
    composite = len(parts) == 2 and unicodedata.normalize("NFC", chr(cp)) == chr(cp)
    lines.append("%s %X %s" % ("p" if composite else "d", cp, " ".join(p.lstrip("0") or "0" for p in parts)))
data = ("\n".join(lines) + "\n").encode()
out.parent.mkdir(parents=True, exist_ok=True)
with open(out, "wb") as f:
    with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0, filename="") as g:
        g.write(data)
print(f"{out}: {len(lines)} lines, {len(data)} bytes before compression")
