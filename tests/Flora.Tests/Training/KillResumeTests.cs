using System.Diagnostics;
using Flora.Training;
using Xunit.Abstractions;

namespace Flora.Tests.Training;

/// <summary>
/// The flora command killed with SIGKILL at a random moment of training, then resumed: the continued
/// loss curve must equal an uninterrupted run's, and no step checkpointed before the kill is lost.
/// </summary>
public class KillResumeTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-kill-").FullName;

    private string[] Arguments(string run) =>
    [
        "train", "--model", "gpt-tiny", "--tokenizer", "bpe:300", "--corpus", TrainerTests.SmallCorpus(_temp),
        "--seq-len", "32", "--batch", "4", "--steps", "40", "--eval-every", "10", "--checkpoint-every", "1",
        "--warmup", "3", "--rank", "4", "--kappa", "16", "--accumulate", "compressed", "--tau", "2", "--dropout", "0.1", "--out", run,
    ];

    private readonly System.Text.StringBuilder _log = new();

    private Process Start(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Flora.Cli.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static int LatestStep(string run)
    {
        try
        {
            string latest = Path.Combine(run, "checkpoints", TrainingCheckpoint.Latest);
            return File.Exists(latest) ? int.Parse(File.ReadAllText(latest).Trim()["step-".Length..]) : 0;
        }
        catch (Exception e) when (e is IOException or FormatException) { return 0; }
    }

    [Fact]
    public void Sigkill_at_a_random_step_then_resume_gives_the_uninterrupted_curve()
    {
        string whole = Path.Combine(_temp, "whole"), killed = Path.Combine(_temp, "killed");
        using (var p = Start(Arguments(whole))) Assert.True(p.WaitForExit(120_000) && p.ExitCode == 0, "the uninterrupted run failed: " + _log);

        int killAfter = new Random(Environment.TickCount).Next(5, 30);
        int checkpointed;
        using (var p = Start(Arguments(killed)))
        {
            var clock = Stopwatch.StartNew();
            while (LatestStep(killed) < killAfter && !p.HasExited && clock.Elapsed < TimeSpan.FromSeconds(120)) Thread.Sleep(5);
            Assert.False(p.HasExited, "the run ended before it could be killed");
            p.Kill();                                                            // SIGKILL: no cleanup of any kind
            p.WaitForExit();
            checkpointed = LatestStep(killed);
        }
        output.WriteLine($"killed after checkpoint {checkpointed} (target {killAfter})");

        using (var p = Start("train", "--resume", killed))
            Assert.True(p.WaitForExit(120_000) && p.ExitCode == 0, "the resumed run failed: " + _log);

        var a = MetricsLog.ReadCsv(Path.Combine(whole, MetricsLog.CsvFile));
        var b = MetricsLog.ReadCsv(Path.Combine(killed, MetricsLog.CsvFile));
        Assert.Equal(40, a.Count);
        Assert.Equal(a.Select(r => r.Step), b.Select(r => r.Step));
        Assert.Equal(a.Select(r => r.TrainLoss), b.Select(r => r.TrainLoss));
        Assert.Equal(a.Select(r => r.ValidationLoss), b.Select(r => r.ValidationLoss));
        Assert.True(checkpointed >= killAfter, $"the checkpoint of step {killAfter} was lost (latest {checkpointed})");
    }

    public void Dispose() => Directory.Delete(_temp, recursive: true);
}
