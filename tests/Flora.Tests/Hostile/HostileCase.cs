namespace Flora.Tests.Hostile;

/// <summary>How a hostile case ended: the three outcomes the census counts.</summary>
internal enum Outcome
{
    /// <summary>A stack trace, an escaped exception, exit code 134 or 70.</summary>
    Crash,
    /// <summary>The bad input was accepted (or data was lost, or a file outside the run changed) with no word about it.</summary>
    SilentAccept,
    /// <summary>Refused with a one-line error naming the problem (or, where the case expects it, warned or handled).</summary>
    ClearRefusal,
}

/// <summary>
/// One careless or hostile use of the command line: the arguments, what must happen (exit code, words the first
/// error line names), which part of its sandbox it may change, and what it must leave intact.
/// </summary>
internal sealed record HostileCase(string Family, string Name)
{
    /// <summary>The arguments; null when <see cref="Custom"/> runs the case.</summary>
    public Func<Sandbox, string[]>? Arguments { get; init; }

    /// <summary>Runs the case itself (signals, a second process); gets the command under test and the sandbox.</summary>
    public Func<Cli, Sandbox, CliResult>? Custom { get; init; }

    /// <summary>Prepares the sandbox (a copied run, a damaged file).</summary>
    public Action<Sandbox>? Setup { get; init; }

    /// <summary>The expected exit code: 2 for usage errors, 1 for refused input, 143 for SIGTERM.</summary>
    public int Exit { get; init; } = 1;

    /// <summary>Words the first line of stderr must hold (all of them; the census counts a refusal naming any of them as clear).</summary>
    public Func<Sandbox, string[]> Mentions { get; init; } = _ => [];

    /// <summary>The expected line is a "warning:" (the run goes on) rather than an "error:".</summary>
    public bool Warning { get; init; }

    /// <summary>The sandbox directory (relative) the case may change; everything else must stay as it was.</summary>
    public string? Writes { get; init; }

    /// <summary>A problem the case left behind (data lost, a wrong claim), or null.</summary>
    public Func<Sandbox, CliResult, string?>? Check { get; init; }

    public string Id => $"{Family}: {Name}";

    public override string ToString() => Id;
}

/// <summary>The verdict on one case: the outcome, whether it is exactly what the case expects, and why not.</summary>
internal sealed record Verdict(Outcome Outcome, bool Exact, string Detail);

internal static class Judge
{
    /// <summary>
    /// Crash when the command crashed; silent acceptance when it left a problem behind, changed a file outside its
    /// run directory, or did not refuse naming the problem; clear refusal otherwise. <see cref="Verdict.Exact"/>
    /// also requires the exact exit code, every mention, and a single-line error.
    /// </summary>
    public static Verdict Of(HostileCase c, Sandbox s, CliResult r, string? leftBehind)
    {
        if (r.Crashed) return new Verdict(Outcome.Crash, false, $"crashed: {r}");
        if (leftBehind is not null) return new Verdict(Outcome.SilentAccept, false, $"{leftBehind}; {r}");
        string[] mentions = c.Mentions(s);
        if (!c.Warning && mentions.Length == 0)
            return r.Code == c.Exit ? new Verdict(Outcome.ClearRefusal, true, "") : new Verdict(Outcome.SilentAccept, false, $"expected exit {c.Exit}: {r}");
        string line = c.Warning
            ? r.Error.Split('\n').FirstOrDefault(l => l.StartsWith("warning:", StringComparison.Ordinal) && mentions.Any(m => l.Contains(m, StringComparison.OrdinalIgnoreCase))) ?? ""
            : r.FirstErrorLine;
        bool named = line.StartsWith(c.Warning ? "warning:" : "error:", StringComparison.Ordinal) && mentions.Any(m => line.Contains(m, StringComparison.OrdinalIgnoreCase));
        bool refused = c.Warning ? r.Code == c.Exit : r.Code != 0;
        if (!named || !refused) return new Verdict(Outcome.SilentAccept, false, $"not refused naming [{string.Join(", ", mentions)}]: {r}");
        bool exact = r.Code == c.Exit && mentions.All(m => line.Contains(m, StringComparison.OrdinalIgnoreCase));
        return new Verdict(Outcome.ClearRefusal, exact, exact ? "" : $"refused, but not as expected (exit {c.Exit}, naming all of [{string.Join(", ", mentions)}]): {r}");
    }
}
