using System.Globalization;
using System.Text;

namespace Flora.Experiments.Reproduce;

/// <summary>How one claim of the paper fared here.</summary>
public enum ClaimOutcome
{
    /// <summary>The evidence agrees with the claim.</summary>
    Holds,
    /// <summary>The evidence contradicts the claim.</summary>
    Fails,
    /// <summary>The run could not test the claim (an arm is missing or diverged, or FLORA never resampled).</summary>
    NotTested,
}

/// <summary>One claim of the paper, in our words, with what was measured and how it fared.</summary>
public sealed record Claim(string Statement, string Evidence, ClaimOutcome Outcome)
{
    /// <summary>"holds", "does not hold" or "not tested".</summary>
    public string OutcomeText => Outcome switch { ClaimOutcome.Holds => "holds", ClaimOutcome.Fails => "does not hold", _ => "not tested" };
}

/// <summary>
/// The paper's claims for one table, judged one by one, and the verdict built from them: the conclusion holds only
/// when every claim was tested and holds; a claim that could not be tested (for instance because FLORA never drew a new
/// projection in the run) makes the verdict "not tested", never "yes".
/// </summary>
public sealed class ClaimList
{
    private readonly List<Claim> _claims = [];
    private readonly List<string> _notes = [];

    /// <summary>The claims so far, in order.</summary>
    public IReadOnlyList<Claim> Claims => _claims;

    /// <summary>Adds a claim.</summary>
    public void Add(string statement, string evidence, ClaimOutcome outcome) => _claims.Add(new Claim(statement, evidence, outcome));

    /// <summary>Adds a sentence said beside the claims (e.g. that momentum itself does not help at this length).</summary>
    public void Note(string note) => _notes.Add(note);

    /// <summary>Whether every claim was tested and holds (and there is at least one).</summary>
    public bool AllHold => _claims.Count > 0 && _claims.All(c => c.Outcome == ClaimOutcome.Holds);

    /// <summary>"yes", "partly", "no" or "not tested", counting the claims.</summary>
    public string Summary
    {
        get
        {
            int holds = _claims.Count(c => c.Outcome == ClaimOutcome.Holds), fails = _claims.Count(c => c.Outcome == ClaimOutcome.Fails);
            int untested = _claims.Count - holds - fails;
            string counts = $"{holds} of {_claims.Count} claims hold, {fails} do not, {untested} not tested";
            if (_claims.Count == 0 || holds + fails == 0) return $"not tested ({counts})";
            if (fails == 0 && untested == 0) return $"yes ({counts})";
            if (holds == 0) return $"no ({counts})";
            return $"partly ({counts})";
        }
    }

    /// <summary>The claims as a Markdown table (claim, evidence, outcome), then the notes.</summary>
    public string Markdown()
    {
        var md = new StringBuilder("| the paper's claim | here | holds? |\n| --- | --- | --- |\n");
        foreach (var c in _claims) md.AppendLine($"| {c.Statement} | {c.Evidence} | {c.OutcomeText} |");
        foreach (var n in _notes) md.AppendLine().AppendLine(n);
        return md.ToString();
    }

    /// <summary>One paragraph: every claim with its outcome, the notes, and the summary.</summary>
    public string Verdict(string prefix = "")
    {
        var text = new StringBuilder(prefix);
        foreach (var c in _claims) text.Append($"{c.Statement}: {c.OutcomeText} ({c.Evidence}). ");
        foreach (var n in _notes) text.Append(n).Append(' ');
        text.Append($"Overall: {Summary}.");
        return text.ToString();
    }

    /// <summary>Test-loss evidence of two series: means, spreads over the seeds and the difference.</summary>
    public static string Compare(ArmSeries a, ArmSeries b) =>
        $"{a.Label} {Loss(a)} vs {b.Label} {Loss(b)}; difference {F(a.TestLoss - b.TestLoss, "+0.000;-0.000")}";

    /// <summary>A series' mean test loss and spread, "4.123 ± 0.010 (3 seeds)".</summary>
    public static string Loss(ArmSeries s) => s.Failed ? "diverged" : $"{F(s.TestLoss, "0.000")} ± {F(s.TestLossSpread, "0.000")} ({s.Runs.Count} seed{(s.Runs.Count == 1 ? "" : "s")})";

    private static string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "-";
}
