using System.Text;
using Flora.Reporting;

namespace Flora.Experiments.Reproduce;

/// <summary>Every experiment of the paper by name, and the document that collects their latest tables (docs/results.md).</summary>
public static class Reproductions
{
    public static IReadOnlyList<IReproduction> All { get; } =
    [
        new Figure1Reproduction(),
        new AccumulationReproduction("table1", unfactored: false),
        new Table2Reproduction(),
        new Table3Reproduction(),
        new AccumulationReproduction("table4", unfactored: true),
        new Table5(),
        new Table6Reproduction(),
        new Figure2(),
        new AblationReproduction(),
    ];

    public static IEnumerable<string> Names => All.Select(r => r.Name);

    public static IReproduction Find(string name) =>
        All.FirstOrDefault(r => r.Name == name)
        ?? throw new ArgumentException($"unknown experiment '{name}': choose one of {string.Join(", ", Names)}");

    /// <summary>
    /// Puts <paramref name="summary"/>'s table into the results document under its own heading, replacing the previous one
    /// (sections are delimited by HTML comments, so the rest of the document is kept as written).
    /// </summary>
    public static void UpdateResults(string path, ReproductionSummary summary)
    {
        string begin = $"<!-- reproduce:{summary.Name}:begin -->", end = $"<!-- reproduce:{summary.Name}:end -->";
        string text = File.Exists(path) ? File.ReadAllText(path) : "# Results: the paper reproduced\n\n";
        // Every heading of the table goes one level down: its title becomes a section of the document.
        string body = string.Join("\n", summary.TableMarkdown.Split('\n').Select(l => l.StartsWith('#') ? "#" + l : l));
        string section = $"{begin}\n{body.TrimEnd()}\n\nConclusion holds here: **{(summary.ConclusionHolds ? "yes" : "no")}**.\n{end}";
        int i = text.IndexOf(begin, StringComparison.Ordinal), j = text.IndexOf(end, StringComparison.Ordinal);
        text = i >= 0 && j > i ? text[..i] + section + text[(j + end.Length)..] : text.TrimEnd() + "\n\n" + section + "\n";
        AtomicFile.WriteAllText(path, text);
    }
}
