using Flora.Data;
using Flora.Experiments;

namespace Flora.Tests.Experiments;

public class PilotStudyTests
{
    private static readonly string Sample = Path.Combine(AppContext.BaseDirectory, "Data", "fashion-mnist-sample");

    /// <summary>A small but real pilot: the 16 sample images, a 32-wide network, rank 4, batch 8.</summary>
    private static (IReadOnlyList<PilotVariantResult> Results, IReadOnlyList<PilotStep> Log) RunSmall(int steps, float lr, params PilotVariant[] variants)
    {
        var train = FashionMnist.LoadTrain(Sample);
        var test = FashionMnist.LoadTest(Sample);
        var options = new PilotOptions { Steps = steps, BatchSize = 8, Hidden = 32, Rank = 4, EvalEvery = 5, LearningRate = lr, Variants = variants, Seed = 3 };
        return PilotStudy.Run(train, test, options);
    }

    private static double[] Losses(IReadOnlyList<PilotStep> log, PilotVariant v) =>
        log.Where(s => s.Variant == v && s.TrainLoss is not null).Select(s => s.TrainLoss!.Value).ToArray();

    [Fact]
    public void LoraB_and_RP_follow_the_same_update_and_RRP_departs_from_RP_after_its_first_step()
    {
        // Eq. 20: training only B of LoRA (scale 1, same A) is RP; the two differ only by rounding.
        var (_, log) = RunSmall(20, 0.05f, PilotVariant.LoraB, PilotVariant.Rp, PilotVariant.Rrp);
        double[] loraB = Losses(log, PilotVariant.LoraB), rp = Losses(log, PilotVariant.Rp), rrp = Losses(log, PilotVariant.Rrp);
        for (int i = 0; i < rp.Length; i++) Assert.Equal(loraB[i], rp[i], 1e-4);
        // RRP's first step uses RP's projection, so the loss of step 2 (computed after one update) is equal...
        Assert.Equal(rp[1], rrp[1], 1e-6);
        // ...and later steps use fresh projections, so the runs separate.
        Assert.True(Enumerable.Range(5, 15).Any(i => Math.Abs(rp[i] - rrp[i]) > 1e-3), "RRP never departed from RP: the projection is not being resampled");
    }

    [Fact]
    public void Runs_are_deterministic_and_do_not_allocate_after_the_first_step()
    {
        var (r1, log1) = RunSmall(12, 0.05f, PilotVariant.Sgd, PilotVariant.Rrp, PilotVariant.Lora);
        var (_, log2) = RunSmall(12, 0.05f, PilotVariant.Sgd, PilotVariant.Rrp, PilotVariant.Lora);
        Assert.Equal(log1.Select(s => s.TrainLoss), log2.Select(s => s.TrainLoss));
        Assert.All(r1, r => Assert.Equal(0, r.AllocationsAfterFirstStep));
        // Evaluation happened at step 0, every 5 steps and at the end.
        Assert.Equal(new[] { 0, 5, 10, 12 }, log1.Where(s => s.Variant == PilotVariant.Sgd && s.TestAccuracy is not null).Select(s => s.Step));
    }

    [Fact]
    public void Training_lowers_the_loss_and_lora_trains_only_its_adapters()
    {
        var (results, log) = RunSmall(30, 0.5f, PilotVariant.Sgd, PilotVariant.Lora);
        double[] sgd = Losses(log, PilotVariant.Sgd);
        Assert.True(sgd.TakeLast(5).Average() < sgd.Take(5).Average() - 0.2, $"SGD did not learn: {sgd.Take(5).Average():F3} -> {sgd.TakeLast(5).Average():F3}");
        var lora = results.Single(r => r.Variant == PilotVariant.Lora);
        Assert.Equal(2 * 4 * 32, lora.TrainableParameters); // A (4, 32) and B (32, 4); the rest is frozen
        Assert.Equal(32 * 32, results.Single(r => r.Variant == PilotVariant.Sgd).TrainableParameters);
    }

    [Theory]
    [InlineData(0, 8, 0.01f, 8, "steps must be positive")]
    [InlineData(10, 0, 0.01f, 8, "batch size must be positive")]
    [InlineData(10, 8, -1f, 8, "learning rate must be positive")]
    [InlineData(10, 8, 0.01f, 769, "rank 769 is invalid for the 768x768 layer")]
    public void Bad_options_are_rejected_with_the_offending_value(int steps, int batch, float lr, int rank, string message)
    {
        var options = new PilotOptions { Steps = steps, BatchSize = batch, LearningRate = lr, Rank = rank };
        var e = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Ordering_verdict_follows_its_stated_rule()
    {
        PilotVariantResult R(PilotVariant v, double loss) => new(v, loss, 0, 0, 0, 0, 0, new Flora.Tensors.MemoryLedger().Snapshot());
        var holds = new[] { R(PilotVariant.Sgd, 0.80), R(PilotVariant.Lora, 0.90), R(PilotVariant.LoraB, 1.2), R(PilotVariant.Rp, 1.2), R(PilotVariant.Rrp, 0.82) };
        Assert.Contains("holds", PilotStudy.OrderingVerdict(holds, out bool ok));
        Assert.True(ok);
        var far = new[] { R(PilotVariant.Sgd, 0.80), R(PilotVariant.Lora, 0.90), R(PilotVariant.LoraB, 1.2), R(PilotVariant.Rp, 1.2), R(PilotVariant.Rrp, 0.88) };
        PilotStudy.OrderingVerdict(far, out ok);
        Assert.False(ok);
        Assert.Null(PilotStudy.OrderingVerdict(holds.Take(3).ToList(), out _));
    }
}
