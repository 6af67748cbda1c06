#!/usr/bin/env python3
"""Rebuilds docs/results.md from the table.md files kept under docs/results/ (GPU runs at paper scale and CPU runs at the
default scale): each experiment's latest table, under markers that `flora reproduce --results docs/results.md` also uses."""
import pathlib, re, sys

root = pathlib.Path(__file__).resolve().parent.parent
results = root / "docs" / "results"
doc = root / "docs" / "results.md"
intro = (root / "docs" / "results-intro.md").read_text()
order = ["figure1", "table1", "table2", "table3", "table4", "table5", "table6", "figure2", "ablation"]

def section(name):
    parts = []
    for scale in ["paper", "default"]:
        for d in sorted((results / scale).glob(f"{name}*")) if (results / scale).exists() else []:
            t = (d / "table.md").read_text()
            t = re.sub(r"\nCommands:\n\n```\n(.*?)```\n", lambda m: f"\nCommands: [{d.relative_to(root / 'docs')}/commands.txt]({d.relative_to(root / 'docs')}/commands.txt)\n", t, flags=re.S)
            # every heading one level down: the experiment's title becomes a section of this page
            t = "\n".join("#" + l if l.startswith("#") else l for l in t.split("\n"))
            # A note.md beside an older table re-judges it under the current rules (resampling, every arm, LoRA as the paper ran it).
            note = (d / "note.md").read_text().strip() if (d / "note.md").exists() else ""
            parts.append(t.strip() + (f"\n\n{note}" if note else "") + f"\n\nFiles: [{d.relative_to(root / 'docs')}]({d.relative_to(root / 'docs')}/)")
    return "\n\n".join(parts)

out = [intro.strip()]
for name in order:
    s = section(name)
    if s:
        out.append(f"<!-- reproduce:{name}:begin -->\n{s}\n<!-- reproduce:{name}:end -->")
doc.write_text("\n\n".join(out) + "\n")
print(f"wrote {doc}")
