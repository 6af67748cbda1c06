using Flora.Backends;
using System.Collections.Concurrent;
using Xunit.Abstractions;

namespace Flora.Tests.Hostile;

/// <summary>
/// The suite's shared state: the command under test, a small corpus and a trained run made by that command, and
/// the root every case's sandbox lives in. Normally the command is this build's, in this process. For a census
/// of another build, set FLORA_CENSUS_CLI to its Flora.Cli.dll and FLORA_CENSUS_OUT to a file: every case then
/// runs against that build as a process and its outcome is appended to the file instead of asserted.
/// </summary>
public sealed class HostileFixture : IDisposable
{
    private readonly Lazy<string> _trainedRun;
    private readonly ConcurrentQueue<string> _log = new();
    private int _cases;

    public HostileFixture()
    {
        Root = Directory.CreateTempSubdirectory("flora-hostile-").FullName;
        string? census = Environment.GetEnvironmentVariable("FLORA_CENSUS_CLI");
        Cli = census is null ? new InProcessCli() : new ProcessCli(Path.GetFullPath(census));
        CensusFile = census is null ? null : Environment.GetEnvironmentVariable("FLORA_CENSUS_OUT") ?? Path.Combine(Root, "census.tsv");
        Seed = int.TryParse(Environment.GetEnvironmentVariable("FLORA_HOSTILE_SEED"), out int seed) ? seed : Environment.TickCount & 0xFFFF;
        Corpus = Training.TrainerTests.SmallCorpus(Root);
        _trainedRun = new(() =>
        {
            string run = Path.Combine(Root, "trained");
            var r = Cli.Run(Root, HostileCases.Tiny(this, run, 4));
            if (r.Code != 0) throw new InvalidOperationException($"the suite's trained run failed: {r}");
            return run;
        });
    }

    internal Cli Cli { get; }
    internal string Root { get; }
    internal string Corpus { get; }
    internal string? CensusFile { get; }

    /// <summary>Seeds the random offsets of the bit flips (FLORA_HOSTILE_SEED repeats a run's).</summary>
    internal int Seed { get; }

    /// <summary>A run of 4 steps (checkpoints at steps 2 and 4) made by the command under test; cases copy it.</summary>
    internal string TrainedRun => _trainedRun.Value;

    internal static string FashionMnistSample => Path.Combine(AppContext.BaseDirectory, "Data", "fashion-mnist-sample");

    internal void Log(string line) => _log.Enqueue(line);

    /// <summary>The run files a command could write into the root directory; a case that put one there is caught and its file removed.</summary>
    private static readonly string[] RootLitter = ["tokenizer", "checkpoints", "metrics.csv", "metrics.jsonl", "loss.svg", "run.json", ".lock", ".lock.owner",
        "figure1.svg", "summary.json", "accuracy.svg", "theorem24.csv", "theorem24.svg", "theorem24.json", "quick", "eval", "memory.json", "memory.md", "tokenizer.tmp"];

    /// <summary>Runs one case in a fresh sandbox and judges it.</summary>
    internal Verdict Try(HostileCase c, ITestOutputHelper? output = null)
    {
        var sandbox = new Sandbox(Path.Combine(Root, "cases", Interlocked.Increment(ref _cases).ToString("D4", System.Globalization.CultureInfo.InvariantCulture)), this);
        c.Setup?.Invoke(sandbox);
        var rootBefore = RootLitter.Where(n => Path.Exists(Path.Combine("/", n))).ToHashSet();
        var before = sandbox.Snapshot(c.Writes);
        var result = c.Custom?.Invoke(Cli, sandbox) ?? Cli.Run(sandbox.Root, c.Arguments!(sandbox));
        var litter = RootLitter.Where(n => !rootBefore.Contains(n) && Path.Exists(Path.Combine("/", n))).ToList();
        foreach (string n in litter)
            if (Directory.Exists(Path.Combine("/", n))) Directory.Delete(Path.Combine("/", n), recursive: true);
            else File.Delete(Path.Combine("/", n));
        string? left = litter.Count > 0 ? $"wrote {string.Join(", ", litter)} into /" : c.Check?.Invoke(sandbox, result) ?? Sandbox.Changes(before, sandbox.Snapshot(c.Writes));
        var verdict = Judge.Of(c, sandbox, result, left);
        while (_log.TryDequeue(out string? line)) output?.WriteLine(line);
        if (CensusFile is not null)
            lock (this) File.AppendAllText(CensusFile, $"{c.Family}\t{c.Name}\t{verdict.Outcome}\t{result.Code}\t{Flat(result.FirstErrorLine)}\t{Flat(left ?? "")}\n");
        return verdict;
    }

    private static string Flat(string s) => s.Replace('\t', ' ').Replace('\n', ' ');

    public void Dispose()
    {
        foreach (string dir in Directory.GetDirectories(Root, "read-only", SearchOption.AllDirectories))
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.Delete(Root, recursive: true);
    }
}

/// <summary>
/// The hostile-input suite: every case must end in a clear refusal with the expected exit code, the first line of
/// stderr naming the problem, no stack trace, and no file changed outside the case's run directory.
/// </summary>
public class HostileInputTests(HostileFixture fixture, ITestOutputHelper output) : IClassFixture<HostileFixture>
{
    public static IEnumerable<object[]> Cases => HostileCases.All.Select(c => new object[] { c.Id });

    [Theory]
    [MemberData(nameof(Cases))]
    public void Is_refused_clearly_and_leaves_everything_else_intact(string id)
    {
        var c = HostileCases.All.Single(x => x.Id == id);
        var verdict = fixture.Try(c, output);
        if (fixture.CensusFile is not null) return;                          // a census of another build records, it does not judge
        Assert.True(verdict.Outcome == Outcome.ClearRefusal && verdict.Exact, $"{verdict.Outcome}: {verdict.Detail}");
    }

    [Fact]
    public void The_suite_covers_every_family_of_the_issue()
    {
        var families = HostileCases.All.GroupBy(c => c.Family).ToDictionary(g => g.Key, g => g.Count());
        Assert.True(families["numbers"] >= 200, $"{families["numbers"]} number cases");
        Assert.True(families["paths"] >= 40, $"{families["paths"]} path cases");
        Assert.True(families["runs"] >= 30, $"{families["runs"]} run cases");
        Assert.Equal(HostileCases.All.Count, HostileCases.All.Select(c => c.Id).Distinct().Count());
    }
}
