using System.Globalization;
using System.Text;
using Flora.Reporting;

namespace Flora.Experiments.Reproduce;

/// <summary>How large a reproduction runs: minutes on two CPU cores, or the paper's ranks and model sizes on a GPU.</summary>
public enum ReproductionScale { Default, Paper }

/// <summary>What every <c>flora reproduce NAME</c> takes.</summary>
public sealed record ReproduceSettings
{
    public ReproductionScale Scale { get; init; } = ReproductionScale.Default;
    /// <summary>A CI-sized version of the default scale: fewest arms and steps that still run the whole protocol.</summary>
    public bool Quick { get; init; }
    public string Device { get; init; } = "cpu";
    public string Precision { get; init; } = "bf16";
    /// <summary>Where this experiment writes (runs/reproduce/NAME by default).</summary>
    public required string OutputDirectory { get; init; }
    /// <summary>Root seed; every run derives its seeds from it (written to commands.txt).</summary>
    public ulong Seed { get; init; }
    /// <summary>Prepared data directory (flora data prepare); null = the default location, prepared on demand.</summary>
    public string? Data { get; init; }
    /// <summary>The command line that started this reproduction (for commands.txt).</summary>
    public string CommandLine { get; init; } = "";
    /// <summary>Overrides of the scale's defaults, for fitting a run to a time budget (null = the scale's own).</summary>
    public int? Steps { get; init; }
    public IReadOnlyList<int>? Ranks { get; init; }
    public int? TestPairs { get; init; }
    /// <summary>Learning rates of Naive's (and the ablation's) sweep instead of the scale's grid; a grid given here is not extended.</summary>
    public IReadOnlyList<float>? NaiveGrid { get; init; }
    /// <summary>Learning rates of LoRA's sweep instead of the scale's grid; a grid given here is not extended.</summary>
    public IReadOnlyList<float>? LoraGrid { get; init; }
    /// <summary>Seeds per compared arm (mean and spread over them); null = the scale's (3, or 1 for --quick).</summary>
    public int? Seeds { get; init; }
    /// <summary>Which model families to run where an experiment has several ("gpt", "t5"); null = all.</summary>
    public IReadOnlyList<string>? Models { get; init; }
    /// <summary>Model presets replacing the scale's decoder-only and encoder-decoder models (e.g. gpt2-350m); null = the scale's.</summary>
    public string? GptModel { get; init; }
    /// <summary>
    /// Reuse the results of runs that an earlier, interrupted reproduction into the same output directory finished
    /// with identical settings (runs/NAME/arm-result.json), instead of training them again: a table too long for one
    /// sitting is finished over several.
    /// </summary>
    public bool Resume { get; init; }
    public string? T5Model { get; init; }
    /// <summary>
    /// Set when this process is one of several workers sharing the output directory (<see cref="ReproductionWorker"/>):
    /// runs are claimed before training, runs of other workers stand in as pending, and no table is written.
    /// </summary>
    public ReproductionWorker? Worker { get; init; }

    public string ScaleName => Quick ? "quick" : Scale == ReproductionScale.Paper ? "paper" : "default";
}

/// <summary>One experiment of the paper, runnable by <c>flora reproduce NAME</c>.</summary>
public interface IReproduction
{
    /// <summary>figure1, table1, ..., figure2, ablation.</summary>
    string Name { get; }
    /// <summary>One line: what the paper's experiment is and what we run instead.</summary>
    string Title { get; }
    /// <summary>
    /// Whether its runs go through <see cref="ArmRunner"/>, each stored on its own, so that several workers can share them
    /// (<see cref="ReproductionWorker"/>); the others train in one piece.
    /// </summary>
    bool RunsArms => false;
    /// <summary>Runs the experiment and writes its outputs (table.md, results.csv, SVGs, commands.txt) under settings.OutputDirectory.</summary>
    ReproductionSummary Run(ReproduceSettings settings, IProgress<string>? log = null, CancellationToken cancel = default);
}

/// <summary>What a reproduction found: its table in the paper's layout and whether the paper's conclusion holds here.</summary>
public sealed record ReproductionSummary(string Name, string Title, string TableMarkdown, string Verdict, bool ConclusionHolds, string OutputDirectory);

/// <summary>
/// Writes a reproduction's outputs the same way for every experiment: table.md (title, setting, the table with
/// the paper's numbers side by side, the verdict, the commands and seeds), results.csv, commands.txt, charts.
/// Every file is written atomically.
/// </summary>
public sealed class ReproductionReport
{
    private readonly StringBuilder _body = new();
    private readonly List<string> _commands = [];

    public ReproductionReport(ReproduceSettings settings, string name, string title)
    {
        Settings = settings;
        Name = name;
        Title = title;
        Directory.CreateDirectory(settings.OutputDirectory);
    }

    public ReproduceSettings Settings { get; }
    public string Name { get; }
    public string Title { get; }

    /// <summary>Appends Markdown (a paragraph, a table) to table.md's body.</summary>
    public void AddMarkdown(string markdown) => _body.AppendLine(markdown.TrimEnd()).AppendLine();

    /// <summary>Records one command line (with its seed) that this experiment ran or that reruns one of its arms.</summary>
    public void AddCommand(string command) => _commands.Add(command);

    public string PathOf(string fileName) => Path.Combine(Settings.OutputDirectory, fileName);

    /// <summary>A worker's walk writes nothing: the tables come from the stored runs once every worker is done.</summary>
    private bool Writes => Settings.Worker is null;

    public void WriteCsv(CsvTable table, string fileName = "results.csv") { if (Writes) table.Save(PathOf(fileName)); }

    public void WriteChart(string fileName, SvgLineChart chart, int width = 800, int height = 480)
    {
        if (Writes) AtomicFile.WriteAllText(PathOf(fileName), chart.ToSvg(width, height));
    }

    public void WriteSvg(string fileName, string svg) { if (Writes) AtomicFile.WriteAllText(PathOf(fileName), svg); }

    /// <summary>Writes table.md and commands.txt and returns the summary; <paramref name="verdict"/> says whether the paper's conclusion holds here.</summary>
    public ReproductionSummary Finish(string verdict, bool holds)
    {
        var md = new StringBuilder();
        md.AppendLine($"# {Name}: {Title}").AppendLine();
        md.AppendLine($"Scale: {Settings.ScaleName}; device: {Settings.Device}; root seed {Settings.Seed}; {DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} UTC.").AppendLine();
        md.Append(_body);
        md.AppendLine($"**Verdict:** {verdict}").AppendLine();
        md.AppendLine("Commands:").AppendLine().AppendLine("```");
        if (Settings.CommandLine.Length > 0) md.AppendLine(Settings.CommandLine);
        foreach (var c in _commands) md.AppendLine(c);
        md.AppendLine("```");
        string text = md.ToString();
        if (!Writes) return new ReproductionSummary(Name, Title, text, verdict, holds, Settings.OutputDirectory);
        AtomicFile.WriteAllText(PathOf("table.md"), text);
        AtomicFile.WriteAllText(PathOf("commands.txt"), string.Join("\n", new[] { Settings.CommandLine }.Concat(_commands).Where(c => c.Length > 0)) + "\n");
        return new ReproductionSummary(Name, Title, text, verdict, holds, Settings.OutputDirectory);
    }

    /// <summary>Formats bytes as GiB with two or three significant decimals (the paper's unit).</summary>
    public static string GiB(double bytes) => (bytes / (1024.0 * 1024 * 1024)).ToString(bytes < 0.1 * 1024 * 1024 * 1024 ? "0.0000" : "0.00", CultureInfo.InvariantCulture);
}
