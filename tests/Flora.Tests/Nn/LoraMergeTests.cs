using Flora.Backends;
using Flora.Nn;

namespace Flora.Tests.Nn;

/// <summary>Merging a LoRA adapter into its base weight leaves the layer's output unchanged, in both weight layouts.</summary>
public sealed class LoraMergeTests
{
    public static TheoryData<WeightLayout, int, int> Layers => new()
    {
        { WeightLayout.OutIn, 6, 4 },
        { WeightLayout.OutIn, 5, 5 },
        { WeightLayout.InOut, 6, 4 },   // GPT-2's Conv1D layout, non-square (c_attn, c_fc)
        { WeightLayout.InOut, 5, 5 },   // square (c_proj): the old merge silently changed the outputs
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void Merging_keeps_the_output_and_a_second_merge_adds_nothing(WeightLayout layout, int inFeatures, int outFeatures)
    {
        using var cpu = TestUtil.Cpu();
        var linear = new Linear(cpu, "proj", inFeatures, outFeatures, bias: true, seed: 7, layout: layout, initStd: 0.5f);
        using var lora = new LoraLinear(linear, rank: 2, alpha: 4f, seed: 11);
        using (var b = TestUtil.Random(cpu, 13, 0.5f, outFeatures, 2)) cpu.Copy(b, lora.B.Value);   // a trained, non-zero B
        using var x = TestUtil.Random(cpu, 17, 1f, 3, inFeatures);

        float[] before = lora.Forward(x).ToArray();
        lora.Merge();
        float[] merged = lora.Forward(x).ToArray();
        lora.Merge();
        float[] twice = lora.Forward(x).ToArray();

        for (int i = 0; i < before.Length; i++)
        {
            Assert.Equal(before[i], merged[i], 1e-5);
            Assert.Equal(before[i], twice[i], 1e-5);
        }
        Assert.All(lora.B.Value.ToArray(), v => Assert.Equal(0f, v));
    }
}
