using System.Diagnostics;
using System.Globalization;
using Flora.Experiments.Reproduce;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// <c>flora reproduce NAME --workers N</c>: N copies of the same command, each with <c>--worker</c>, train the
/// experiment's runs side by side into one output directory (<see cref="ReproductionWorker"/>); this process forwards
/// their output, prefixed with the worker's number, and waits. With <c>--gpus 0,1,...</c> worker i sees only GPU
/// gpus[i mod count] (CUDA_VISIBLE_DEVICES); otherwise every worker inherits this process's GPUs (several small models
/// on one GPU). On a CPU each worker's OpenBLAS gets an equal share of the cores unless OPENBLAS_NUM_THREADS is set.
/// When a worker fails the others are stopped; the runs stored so far stay, and the same command resumes.
/// </summary>
internal static class ReproduceWorkers
{
    /// <summary>The command of one worker: the experiment's own settings, spelled out, and --worker.</summary>
    public static List<string> WorkerArguments(string experiment, ReproduceSettings s, string outputRoot, string scale)
    {
        string F(float x) => x.ToString("R", CultureInfo.InvariantCulture);
        var a = new List<string> { "reproduce", experiment, "--scale", scale, "--device", s.Device, "--precision", s.Precision, "--out", outputRoot,
            "--seed", s.Seed.ToString(CultureInfo.InvariantCulture), "--worker" };
        if (s.Quick) a.Add("--quick");
        if (s.Data is string d) a.AddRange(["--data", d]);
        if (s.Steps is int steps) a.AddRange(["--steps", steps.ToString(CultureInfo.InvariantCulture)]);
        if (s.Ranks is { Count: > 0 } ranks) { a.Add("--ranks"); a.AddRange(ranks.Select(r => r.ToString(CultureInfo.InvariantCulture))); }
        if (s.TestPairs is int pairs) a.AddRange(["--test-pairs", pairs.ToString(CultureInfo.InvariantCulture)]);
        if (s.Seeds is int seeds) a.AddRange(["--seeds", seeds.ToString(CultureInfo.InvariantCulture)]);
        if (s.NaiveGrid is { Count: > 0 } naive) { a.Add("--naive-lrs"); a.AddRange(naive.Select(F)); }
        if (s.LoraGrid is { Count: > 0 } lora) { a.Add("--lora-lrs"); a.AddRange(lora.Select(F)); }
        if (s.Models is { Count: > 0 } models) { a.Add("--models"); a.AddRange(models); }
        if (s.GptModel is string gpt) a.AddRange(["--gpt-model", gpt]);
        if (s.T5Model is string t5) a.AddRange(["--t5-model", t5]);
        return a;
    }

    /// <summary>The GPUs of --gpus ("0,1,2"), checked; empty when not given.</summary>
    public static string[] ParseGpus(string? gpus)
    {
        if (string.IsNullOrWhiteSpace(gpus)) return [];
        var list = gpus.Split(',', StringSplitOptions.TrimEntries);
        foreach (string g in list)
            if (!int.TryParse(g, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                throw new ArgumentException($"--gpus takes GPU numbers separated by commas (e.g. 0,1,2,3), got '{gpus}'");
        return list;
    }

    /// <summary>Starts <paramref name="count"/> workers, forwards their output, waits; returns the first failing exit code, or 0.</summary>
    public static int Run(IAnsiConsole console, TextWriter error, IReadOnlyList<string> arguments, int count, string[] gpus, bool cpu, CancellationToken cancel)
    {
        var (file, prefix) = LaunchCommand.SelfCommand();
        var children = new List<Process>();
        int threads = Math.Max(1, Environment.ProcessorCount / count);
        console.MarkupLine(Markup.Escape($"{count} workers{(gpus.Length > 0 ? $" on GPUs {string.Join(",", gpus)}" : "")}{(cpu ? $", {threads} OpenBLAS thread(s) each" : "")}: "
            + string.Join(' ', ["flora", .. arguments])));
        try
        {
            for (int i = 0; i < count; i++)
            {
                var info = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
                foreach (string a in prefix.Concat(arguments)) info.ArgumentList.Add(a);
                if (gpus.Length > 0) info.Environment["CUDA_VISIBLE_DEVICES"] = gpus[i % gpus.Length];
                if (cpu && Environment.GetEnvironmentVariable("OPENBLAS_NUM_THREADS") is null) info.Environment["OPENBLAS_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
                var process = Process.Start(info) ?? throw new FloraException($"could not start {file}");
                string tag = $"[worker {i + 1}] ";
                process.OutputDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) lock (console) console.WriteLine(tag + line); };
                process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) lock (console) error.WriteLine(tag + line); };
                process.BeginOutputReadLine();
                process.BeginErrorReadLine();
                children.Add(process);
            }
            var running = children.ToList();
            while (running.Count > 0)
            {
                cancel.ThrowIfCancellationRequested();
                foreach (var child in running.ToList())
                {
                    if (!child.WaitForExit(100)) continue;
                    child.WaitForExit();                                           // flush the forwarded output
                    running.Remove(child);
                    if (child.ExitCode == 0) continue;
                    lock (console) error.WriteLine($"error: worker {children.IndexOf(child) + 1} exited with code {child.ExitCode}; stopped the others (the runs they stored stay: run the same command to resume)");
                    return child.ExitCode;
                }
            }
            return 0;
        }
        finally
        {
            foreach (var process in children)
            {
                if (!process.HasExited) process.Kill(entireProcessTree: true);
                process.Dispose();
            }
        }
    }
}
