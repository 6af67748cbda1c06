using System.Text.Json;
using System.Text.Json.Serialization;
using Flora.Metrics;
using Flora.Reporting;
using Flora.Training;

namespace Flora.Experiments.Reproduce;

/// <summary>
/// What one arm measured, as stored in RUNS/NAME/arm-result.json so that an interrupted reproduction can be resumed
/// (<see cref="ReproduceSettings.Resume"/>): the measurements of <see cref="ArmResult"/> and the identity of the settings
/// that produced them (the run's training options, test pairs and generation length, as JSON). A stored result is
/// reused only for identical settings.
/// </summary>
internal sealed record StoredArm(
    string Identity, float LearningRate, double? BestValidationLoss, long BestStep, double? TestLoss, double? TestPerplexity,
    BleuScore? Bleu, RougeCorpusScores? Rouge, long PeakBytes, long OptimizerStateBytes, long AccumulatorPeakBytes,
    long GradientPeakBytes, double Seconds, double[][] ValidationCurve, string Command, string? Failure,
    long Resamplings, long TrainableParameters, long LastStep, double? SentenceBleu)
{
    private const string FileName = "arm-result.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>The file an arm's result is stored in.</summary>
    public static string FileIn(string directory) => Path.Combine(directory, FileName);

    /// <summary>The identity of a run's settings: its training options, test pairs and generation length, as JSON.</summary>
    public static string IdentityOf(TrainOptions options, int testPairs, int maxNewTokens) =>
        JsonSerializer.Serialize(new { options, testPairs, maxNewTokens }, Json);

    /// <summary>Writes <paramref name="result"/> (atomically) into <paramref name="directory"/>.</summary>
    public static void Save(string directory, string identity, ArmResult result)
    {
        var r = result;
        Directory.CreateDirectory(directory);
        var stored = new StoredArm(identity, r.LearningRate, r.BestValidationLoss, r.BestStep, r.TestLoss, r.TestPerplexity, r.Bleu, r.Rouge,
            r.PeakBytes, r.OptimizerStateBytes, r.AccumulatorPeakBytes, r.GradientPeakBytes, r.Seconds,
            r.ValidationCurve.Select(p => new[] { p.Step, p.Loss }).ToArray(), r.Command, r.Failure, r.Resamplings, r.TrainableParameters,
            r.LastStep, r.SentenceBleu);
        AtomicFile.WriteAllText(FileIn(directory), JsonSerializer.Serialize(stored, Json));
    }

    /// <summary>
    /// The result stored in <paramref name="directory"/> for <paramref name="arm"/>, or null when there is none, it cannot
    /// be read, or it was made with other settings.
    /// </summary>
    public static ArmResult? TryLoad(string directory, string identity, Arm arm)
    {
        string path = FileIn(directory);
        if (!File.Exists(path)) return null;
        StoredArm? s;
        try { s = JsonSerializer.Deserialize<StoredArm>(File.ReadAllText(path), Json); }
        catch (JsonException) { return null; }
        if (s is null || s.Identity != identity) return null;
        return new ArmResult(arm, s.LearningRate, s.BestValidationLoss, s.BestStep, s.TestLoss, s.TestPerplexity, s.Bleu, s.Rouge,
            s.PeakBytes, s.OptimizerStateBytes, s.AccumulatorPeakBytes, s.GradientPeakBytes, s.Seconds,
            s.ValidationCurve.Select(p => ((long)p[0], p[1])).ToList(), s.Command, s.Failure, s.Resamplings, s.TrainableParameters,
            s.LastStep, s.SentenceBleu);
    }
}
