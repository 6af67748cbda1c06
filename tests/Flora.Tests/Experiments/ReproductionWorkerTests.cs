using Flora.Experiments.Bible;
using Flora.Experiments.Reproduce;
using static Flora.Tests.TestCli;

namespace Flora.Tests.Experiments;

/// <summary>
/// <c>flora reproduce --workers N</c>: several processes share one output directory, each run trained by exactly one of
/// them (claim files), and the tables written afterwards equal those of one process.
/// </summary>
public sealed class ReproductionWorkerTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("flora-workers-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void A_claim_is_held_once_and_released_on_dispose()
    {
        string run = Path.Combine(_root, "runs", "a");
        using (var first = RunClaim.TryTake(run))
        {
            Assert.NotNull(first);
            Assert.True(File.Exists(RunClaim.FileOf(run)));
            Assert.Null(RunClaim.TryTake(run));                    // this (live) process holds it
        }
        Assert.False(File.Exists(RunClaim.FileOf(run)));
        using var again = RunClaim.TryTake(run);
        Assert.NotNull(again);
    }

    [Fact]
    public void A_claim_of_an_ended_process_is_taken_over_and_one_of_another_host_or_half_written_is_respected()
    {
        string run = Path.Combine(_root, "runs", "b");
        Directory.CreateDirectory(Path.GetDirectoryName(run)!);
        string file = RunClaim.FileOf(run);

        // A process id that cannot be running (beyond Linux's pid_max of 2^22).
        File.WriteAllText(file, $"{Environment.MachineName} 2147483000 0");
        using (var taken = RunClaim.TryTake(run)) Assert.NotNull(taken);

        // This very process, but started at another time: the id was reused, the claim is stale.
        File.WriteAllText(file, $"{Environment.MachineName} {Environment.ProcessId} 12345");
        using (var taken = RunClaim.TryTake(run)) Assert.NotNull(taken);

        File.WriteAllText(file, "some-other-host 1 0");
        Assert.Null(RunClaim.TryTake(run));

        File.WriteAllText(file, "");                                // created, not yet written by its owner
        Assert.Null(RunClaim.TryTake(run));
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddMinutes(-5));   // ... and never written: its owner died
        using (var taken = RunClaim.TryTake(run)) Assert.NotNull(taken);
    }

    [Fact]
    public void Two_workers_train_each_run_once_and_the_table_equals_one_process()
    {
        string data = Path.Combine(_root, "bible");
        BiblePreparation.Prepare(new PrepareOptions { OutputDirectory = data, InstallMissingPackages = false });
        string single = Path.Combine(_root, "single"), shared = Path.Combine(_root, "shared");
        // Options the workers must be given as the parent was (else their runs would not be the parent's, and it would train them again).
        string[] options = ["--quick", "--data", data, "--steps", "20", "--ranks", "8", "--seeds", "1", "--test-pairs", "8", "--naive-lrs", "0.03", "0.09", "0.3"];
        var (code, _, error) = RunCli(["reproduce", "table3", .. options, "--out", single]);
        Assert.True(code == 0, error);

        (code, string output, error) = RunCli(["reproduce", "table3", .. options, "--out", shared, "--workers", "2"]);
        Assert.True(code == 0, error + output);
        string runs = Path.Combine(shared, "quick", "table3", "runs");
        int stored = Directory.EnumerateDirectories(runs).Count(d => File.Exists(Path.Combine(d, "arm-result.json")));
        Assert.Equal(6, stored);                                    // Naive at the 3 rates given, Flora at 3 kappas
        // Every run trained by exactly one worker ("best validation" ends a trained run), both workers busy.
        var trained = output.Split('\n').Where(l => l.Contains("  best validation", StringComparison.Ordinal)).ToList();
        Assert.Equal(stored, trained.Count);
        Assert.All(trained, l => Assert.StartsWith("[worker ", l));            // the parent trained nothing: it reused every run
        Assert.Equal(stored, output.Split('\n').Count(l => l.Contains("reusing the result stored in", StringComparison.Ordinal)));
        Assert.Contains(trained, l => l.StartsWith("[worker 1]", StringComparison.Ordinal));
        Assert.Contains(trained, l => l.StartsWith("[worker 2]", StringComparison.Ordinal));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(shared, "quick"), "*.claim", SearchOption.AllDirectories));

        // The tables come from the stored runs: the same measurements as one process made (the seconds aside).
        static IEnumerable<string> Measured(string dir) => ReadResults(Path.Combine(dir, "quick", "table3", "results.csv"))
            .Select(r => string.Join(",", r.Where(c => c.Key is not ("seconds" or "command")).Select(c => c.Value)));
        Assert.Equal(Measured(single), Measured(shared));
        Assert.True(File.Exists(Path.Combine(shared, "quick", "table3", "table.md")));
    }

    [Fact]
    public void Workers_are_refused_where_they_cannot_help()
    {
        var (code, _, error) = RunCli("reproduce", "figure1", "--quick", "--workers", "2", "--out", _root);
        Assert.Equal(1, code);
        Assert.Contains("figure1 trains in one piece", error);
        (code, _, error) = RunCli("reproduce", "table3", "--quick", "--gpus", "0,1", "--out", _root);
        Assert.Equal(1, code);
        Assert.Contains("--gpus goes with --workers", error);
        (code, _, error) = RunCli("reproduce", "table3", "--quick", "--workers", "2", "--gpus", "0,x", "--out", _root);
        Assert.Equal(1, code);
        Assert.Contains("--gpus takes GPU numbers", error);
    }
}
