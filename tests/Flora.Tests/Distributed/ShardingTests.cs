using Flora.Data;
using Flora.Data.Tokenizers;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Tests.Distributed;

/// <summary>Each rank reads its own shard: together the ranks read what one reader of the global batch would, no example twice in a pass.</summary>
public class ShardingTests
{
    private static int[] Ints(Tensor t)
    {
        var a = new int[t.Count];
        t.CopyTo<int>(a);
        return a;
    }

    /// <summary>Tokens 0..n-1, so that a window's first input token names the window (token = position).</summary>
    private static int[] Counting(int n) => Enumerable.Range(0, n).ToArray();

    [Fact]
    public void Token_window_shards_split_every_global_batch_and_cover_a_pass_without_repeats()
    {
        using var cpu = TestUtil.Cpu();
        const int world = 3, batch = 2, seqLen = 4, windows = 40;            // 40 windows: 6 global batches of 6 per pass, 4 dropped
        int[] tokens = Counting(windows * seqLen + 1);
        using var single = new TokenWindows(cpu, tokens, batch * world, seqLen, seed: 5);
        var ranks = Enumerable.Range(0, world).Select(_ => new TokenWindows(cpu, tokens, batch, seqLen, seed: 5)).ToArray();
        for (int r = 0; r < world; r++) ranks[r].SetShard(r, world);
        var seenThisPass = new HashSet<int>();
        for (int step = 0; step < 14; step++)                                // over two passes
        {
            single.Next();
            int[] whole = Ints(single.Inputs);
            var parts = new List<int>();
            foreach (var reader in ranks)
            {
                reader.Next();
                parts.AddRange(Ints(reader.Inputs));
                Assert.Equal(single.Position, reader.Position);               // the same (global) position on every rank
            }
            Assert.Equal(whole, parts);                                        // rank k holds rows [k B, (k + 1) B) of the global batch
            if (single.Position.Index == batch * world) seenThisPass.Clear(); // a new pass began with this batch
            for (int row = 0; row < batch * world; row++)
                Assert.True(seenThisPass.Add(whole[row * seqLen] / seqLen), $"window {whole[row * seqLen] / seqLen} read twice in a pass");
        }
        foreach (var r in ranks) r.Dispose();
    }

    [Fact]
    public void More_ranks_than_the_text_has_windows_for_is_an_error_that_says_what_to_change()
    {
        using var cpu = TestUtil.Cpu();
        using var reader = new TokenWindows(cpu, Counting(10 * 4 + 1), 4, 4, seed: 1);
        var e = Assert.Throws<FloraException>(() => reader.SetShard(0, 3));
        Assert.Contains("3 ranks x batch 4 = 12 windows per step, but the text has only 10 windows", e.Message);
        Assert.Throws<ArgumentException>(() => reader.SetShard(2, 2));
    }

    private static readonly string[] Spanish = ["uno", "dos", "tres", "cuatro", "casa", "perro", "gato", "sol"];
    private static readonly string[] English = ["one", "two", "three", "four", "house", "dog", "cat", "sun"];

    [Fact]
    public void Translation_shards_take_turns_over_the_bucketed_batches_of_a_pass()
    {
        using var cpu = TestUtil.Cpu();
        var trainer = new BpeTrainer(300);
        trainer.AddText(string.Join(' ', Spanish.Concat(English)) + " translate Spanish to English: . English:");
        ByteLevelBpe tokenizer = trainer.Train();
        var template = new TranslationTemplate(tokenizer, new TranslationFormat(), TranslationLayout.DecoderOnly, 64);
        var random = new Random(2);
        var pairs = Enumerable.Range(0, 44).Select(_ =>
        {
            int[] w = Enumerable.Range(0, random.Next(1, 6)).Select(_ => random.Next(Spanish.Length)).ToArray();
            return (string.Join(' ', w.Select(i => Spanish[i])), string.Join(' ', w.Select(i => English[i])));
        }).ToArray();
        using var single = new TranslationTask(cpu, template, pairs, pairs[..4], 4, 3, "test");        // 11 batches a pass
        using var rank0 = new TranslationTask(cpu, template, pairs, pairs[..4], 4, 3, "test");
        using var rank1 = new TranslationTask(cpu, template, pairs, pairs[..4], 4, 3, "test");
        rank0.SetShard(0, 2);
        rank1.SetShard(1, 2);
        var batches = Enumerable.Range(0, 11).Select(_ => Ints(single.Next().Inputs)).ToArray();
        for (int step = 0; step < 5; step++)
        {
            Assert.Equal(batches[2 * step], Ints(rank0.Next().Inputs));
            Assert.Equal(batches[2 * step + 1], Ints(rank1.Next().Inputs));
            Assert.Equal(rank0.Position, rank1.Position);
        }
        Assert.Equal(new DataPosition(0, 10), rank0.Position);
        rank0.Next();                                                         // the 11th batch is dropped: a new pass
        Assert.Equal(new DataPosition(1, 2), rank0.Position);
    }
}
