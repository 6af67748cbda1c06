using System.Net;
using System.Net.Sockets;
using Flora.Backends.Cuda;
using Flora.Distributed;

namespace Flora.Tests.Distributed;

/// <summary>How ranks meet (a file or HOST:PORT), and NCCL's loader, without a GPU.</summary>
public class RendezvousTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-rendezvous-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static byte[] Id(byte fill) => Enumerable.Repeat(fill, NcclUniqueId.Bytes).ToArray();

    private static byte[][] Meet(string master, int world, int[]? worlds = null) => InProcessGroup.Run(world, (_, rank) =>
    {
        var rendezvous = new Rendezvous(master, rank, worlds?[rank] ?? world, TimeSpan.FromSeconds(20));
        byte[] id = rendezvous.Exchange(() => Id(42));
        return id;
    }, TimeSpan.FromSeconds(30));

    [Fact]
    public void Through_a_file_every_rank_gets_rank_0_s_id_and_rank_0_removes_the_file_when_all_have_joined()
    {
        string file = Path.Combine(_temp, "run.id");
        var ids = InProcessGroup.Run(3, (group, rank) =>
        {
            var rendezvous = new Rendezvous(file, rank, 3, TimeSpan.FromSeconds(20));
            byte[] id = rendezvous.Exchange(() => Id(7));
            using var cpu = TestUtil.Cpu();
            group.Join(rank, cpu).Barrier();                                 // stands for ncclCommInitRank: all have joined
            rendezvous.Finish();
            return id;
        });
        Assert.All(ids, id => Assert.Equal(Id(7), id));
        Assert.False(File.Exists(file));
    }

    [Fact]
    public void Through_host_and_port_every_rank_gets_rank_0_s_id()
    {
        int port = FreePort();
        var ids = InProcessGroup.Run(3, (group, rank) =>
        {
            var rendezvous = new Rendezvous($"127.0.0.1:{port}", rank, 3, TimeSpan.FromSeconds(20));
            byte[] id = rendezvous.Exchange(() => Id(9));
            using var cpu = TestUtil.Cpu();
            group.Join(rank, cpu).Barrier();
            rendezvous.Finish();
            return id;
        });
        Assert.All(ids, id => Assert.Equal(Id(9), id));
    }

    [Fact]
    public void A_rank_started_for_another_world_size_is_refused()
    {
        string file = Path.Combine(_temp, "mixed.id");
        var e = Assert.Throws<AggregateException>(() => Meet(file, 2, worlds: [2, 3]));
        Assert.Contains(e.InnerExceptions, x => x is RankMismatchException && x.Message.Contains("rank 0 runs a world of 2 ranks, this rank was started for 3"));
    }

    [Theory]
    [InlineData("10.0.0.5:29500", "10.0.0.5", 29500)]
    [InlineData("node-a:1234", "node-a", 1234)]
    [InlineData("[::1]:29500", "::1", 29500)]
    public void Host_and_port_are_told_from_file_paths(string master, string host, int port) =>
        Assert.Equal((host, port), Rendezvous.ParseEndpoint(master));

    [Theory]
    [InlineData("/shared/run.id")]
    [InlineData("run.id")]
    [InlineData("./dir:1/x")]
    public void Anything_else_is_a_file(string master) => Assert.Null(Rendezvous.ParseEndpoint(master));

    [Fact]
    public void A_port_out_of_range_is_an_error() =>
        Assert.Contains("outside 1..65535", Assert.Throws<ArgumentException>(() => Rendezvous.ParseEndpoint("host:70000")).Message);

    [Fact]
    public void Nccl_that_cannot_be_loaded_is_an_error_listing_every_file_tried()
    {
        var e = Assert.Throws<FloraException>(() => Nccl.Load(["libnccl-missing.so.2", "/nonexistent/libnccl.so.2"]));
        Assert.Contains("NCCL not found (tried libnccl-missing.so.2, /nonexistent/libnccl.so.2)", e.Message);
        Assert.Equal("0", Environment.GetEnvironmentVariable("NCCL_NVLS_ENABLE"));     // multicast was switched off before any load
    }

    [Fact]
    public void The_default_candidates_start_with_nccl_2_s_soname() =>
        Assert.Equal("libnccl.so.2", Nccl.DefaultCandidates().First());

    [Fact]
    public void An_nccl_unique_id_survives_the_trip_through_bytes()
    {
        byte[] bytes = Enumerable.Range(0, NcclUniqueId.Bytes).Select(i => (byte)(i * 3)).ToArray();
        Assert.Equal(bytes, NcclUniqueId.FromBytes(bytes).ToArray());
        Assert.Throws<ArgumentException>(() => NcclUniqueId.FromBytes(new byte[12]));
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
