using Flora.Distributed;

namespace Flora.Tests.Distributed;

/// <summary>The in-process group: several ranks as threads, the tests' stand-in for NCCL.</summary>
public class InProcessGroupTests
{
    [Fact]
    public void All_reduce_sums_or_averages_every_rank_s_tensors_and_every_rank_gets_the_same_result()
    {
        const int world = 3;
        var results = InProcessGroup.Run(world, (group, rank) =>
        {
            using var cpu = TestUtil.Cpu();
            using var comm = group.Join(rank, cpu);
            using var a = TestUtil.FromArray(cpu, [rank, 10 * rank, 1], 3);
            using var b = TestUtil.FromArray(cpu, [rank + 0.5f], 1);
            comm.StartAllReduce([a, b], ReduceOp.Sum);
            comm.Wait();
            using var c = TestUtil.FromArray(cpu, [rank, 2f * rank], 2);
            comm.StartAllReduce([c], ReduceOp.Average);
            comm.Wait();
            Span<double> host = [rank, 1];
            comm.AllReduce(host, ReduceOp.Sum);
            return (A: a.ToArray(), B: b.ToArray(), C: c.ToArray(), Host: host.ToArray());
        });
        foreach (var r in results)
        {
            Assert.Equal([3f, 30f, 3f], r.A);                               // 0 + 1 + 2, 0 + 10 + 20, 1 + 1 + 1
            Assert.Equal([4.5f], r.B);
            Assert.Equal([1f, 2f], r.C);                                      // means of 0, 1, 2 and 0, 2, 4
            Assert.Equal([3.0, 3.0], r.Host);
        }
    }

    [Fact]
    public void Broadcast_copies_the_root_s_values_bit_for_bit()
    {
        var results = InProcessGroup.Run(2, (group, rank) =>
        {
            using var cpu = TestUtil.Cpu();
            using var comm = group.Join(rank, cpu);
            using var t = TestUtil.FromArray(cpu, [rank + 0.1f, -rank], 2);
            comm.Broadcast([t], root: 1);
            Span<double> host = [Math.PI * (rank + 1)];
            comm.Broadcast(host, root: 0);
            return (T: t.ToArray(), Host: host[0]);
        });
        Assert.All(results, r => Assert.Equal([1.1f, -1f], r.T));
        Assert.All(results, r => Assert.Equal(Math.PI, r.Host));
    }

    [Fact]
    public void Ranks_that_call_different_collectives_all_fail_with_a_mismatch()
    {
        var e = Assert.Throws<AggregateException>(() => InProcessGroup.Run(2, (group, rank) =>
        {
            using var cpu = TestUtil.Cpu();
            using var comm = group.Join(rank, cpu);
            using var t = TestUtil.FromArray(cpu, new float[rank + 1], rank + 1);   // sizes differ between the ranks
            comm.StartAllReduce([t], ReduceOp.Sum);
            return 0;
        }));
        Assert.All(e.InnerExceptions, x => Assert.IsType<RankMismatchException>(x));
        Assert.Equal(2, e.InnerExceptions.Count);
        Assert.Contains("rank 1 called all-reduce Sum of [2]", e.InnerExceptions[0].Message);
    }

    [Fact]
    public void A_rank_that_fails_releases_the_ranks_waiting_for_it()
    {
        var e = Assert.Throws<AggregateException>(() => InProcessGroup.Run(3, (group, rank) =>
        {
            if (rank == 2) throw new InvalidOperationException("rank 2 broke");
            using var cpu = TestUtil.Cpu();
            using var comm = group.Join(rank, cpu);
            comm.Barrier();                                                   // would wait forever for rank 2
            return 0;
        }, TimeSpan.FromSeconds(30)));
        Assert.Contains("rank 2 broke", e.Message);
        Assert.Equal(3, e.InnerExceptions.Count);
        Assert.All(e.InnerExceptions.Where(x => x is not InvalidOperationException), x => Assert.Contains("another rank failed", x.Message));
    }
}
