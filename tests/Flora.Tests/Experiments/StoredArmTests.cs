using Flora.Experiments.Reproduce;
using Flora.Metrics;
using Flora.Training;
using Xunit;

namespace Flora.Tests.Experiments;

/// <summary>The stored result of a reproduction's run: read back whole, and only for the settings that made it.</summary>
public sealed class StoredArmTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("flora-stored-arm-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ArmResult Result(Arm arm) => new(arm, 0.01f, 4.25, 800, 4.3, Math.Exp(4.3),
        new BleuScore(12.5, [40.0, 20.0, 10.0, 5.0], 0.9, 0.92, 120, 130, [48, 22, 10, 4], [120, 110, 100, 90]),
        new RougeCorpusScores(new RougeScore(0.5, 0.4, 0.44), new RougeScore(0.2, 0.1, 0.13), new RougeScore(0.45, 0.35, 0.39), 100),
        1_000_000, 2_000, 3_000, 4_000, 29.5, [(250, 5.1), (500, 4.6)], "flora train --model gpt-tiny", null,
        Resamplings: 4, TrainableParameters: 124_000, LastStep: 1000, SentenceBleu: 9.75);

    [Fact]
    public void A_stored_result_reads_back_equal_for_the_same_settings_only()
    {
        var options = new TrainOptions { Model = "gpt-tiny", Steps = 1000 };
        var arm = new Arm("Flora", 256, options);
        string identity = StoredArm.IdentityOf(options, 100, 64);
        var result = Result(arm);
        StoredArm.Save(_dir, identity, result);

        var back = StoredArm.TryLoad(_dir, identity, arm);
        Assert.NotNull(back);
        Assert.Equal(result.TestLoss, back!.TestLoss);
        Assert.Equal(result.Bleu!.Score, back.Bleu!.Score);
        Assert.Equal(result.Bleu.Counts, back.Bleu.Counts);
        Assert.Equal(result.Rouge, back.Rouge);
        Assert.Equal(result.ValidationCurve, back.ValidationCurve);
        Assert.Equal((result.Resamplings, result.TrainableParameters, result.LastStep, result.SentenceBleu, result.PeakBytes, result.Seconds),
            (back.Resamplings, back.TrainableParameters, back.LastStep, back.SentenceBleu, back.PeakBytes, back.Seconds));

        // Other steps, other test pairs: not the same run.
        Assert.Null(StoredArm.TryLoad(_dir, StoredArm.IdentityOf(options with { Steps = 999 }, 100, 64), arm));
        Assert.Null(StoredArm.TryLoad(_dir, StoredArm.IdentityOf(options, 50, 64), arm));
        // A diverged run is stored too, and a damaged file is ignored (the run is trained again).
        StoredArm.Save(_dir, identity, result with { TestLoss = null, Failure = "diverged at step 7", BestValidationLoss = double.NaN });
        Assert.Equal("diverged at step 7", StoredArm.TryLoad(_dir, identity, arm)!.Failure);
        File.WriteAllText(StoredArm.FileIn(_dir), "{ not json");
        Assert.Null(StoredArm.TryLoad(_dir, identity, arm));
    }
}
