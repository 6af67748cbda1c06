using System.Collections;
using Flora.Cli.Commands;

namespace Flora.Tests.Distributed;

/// <summary>flora launch: which processes it starts, with which rank, GPU and rendezvous; the worker's side of the environment.</summary>
public class LaunchTests
{
    private static readonly string[] Train = ["train", "--device", "cuda", "--steps", "5"];

    private static Dictionary<string, string> Env(LaunchPlan.Worker w) => w.Environment.ToDictionary(e => e.Name, e => e.Value);

    [Fact]
    public void One_machine_gets_one_process_per_gpu_with_ranks_0_to_n_minus_1_and_a_temporary_rendezvous_file()
    {
        var plan = LaunchPlan.Create(Train, gpus: 4, nodes: 1, nodeRank: 0, master: null, rank: null, worldSize: null, visibleDevices: null);
        Assert.Equal(4, plan.WorldSize);
        Assert.True(plan.TemporaryMaster);
        Assert.Null(Flora.Distributed.Rendezvous.ParseEndpoint(plan.Master));
        Assert.Equal([0, 1, 2, 3], plan.Processes.Select(p => p.Rank));
        for (int i = 0; i < 4; i++)
        {
            var env = Env(plan.Processes[i]);
            Assert.Equal($"{i}", env["FLORA_RANK"]);
            Assert.Equal("4", env["FLORA_WORLD_SIZE"]);
            Assert.Equal($"{i}", env["CUDA_VISIBLE_DEVICES"]);
            Assert.Equal(plan.Master, env["FLORA_MASTER"]);
            Assert.Equal("0", env["NCCL_NVLS_ENABLE"]);
        }
        Assert.Equal(Train, plan.Command);
    }

    [Fact]
    public void The_second_of_two_machines_numbers_its_ranks_after_the_first_s_and_uses_the_gpus_it_was_given()
    {
        var plan = LaunchPlan.Create(Train, gpus: 2, nodes: 2, nodeRank: 1, master: "node0:29500", rank: null, worldSize: null, visibleDevices: "5,7");
        Assert.Equal(4, plan.WorldSize);
        Assert.False(plan.TemporaryMaster);
        Assert.Equal([2, 3], plan.Processes.Select(p => p.Rank));
        Assert.Equal(["5", "7"], plan.Processes.Select(p => Env(p)["CUDA_VISIBLE_DEVICES"]));
        Assert.Equal(["0", "1"], plan.Processes.Select(p => Env(p)["FLORA_LOCAL_RANK"]));
    }

    [Fact]
    public void An_explicit_rank_starts_one_process()
    {
        var plan = LaunchPlan.Create(Train, gpus: 1, nodes: 1, nodeRank: 0, master: "/shared/run.id", rank: 5, worldSize: 8, visibleDevices: null);
        Assert.Equal(8, plan.WorldSize);
        Assert.Equal(5, Assert.Single(plan.Processes).Rank);
        Assert.Equal("0", Env(plan.Processes[0])["CUDA_VISIBLE_DEVICES"]);
    }

    [Theory]
    [InlineData(new[] { "eval" }, 2, 1, 0, null, null, null, null, "runs 'train'")]
    [InlineData(new[] { "train" }, 2, 2, 0, null, null, null, null, "several machines need --master")]
    [InlineData(new[] { "train" }, 2, 2, 2, "h:1", null, null, null, "--node-rank 2 is outside 0..1")]
    [InlineData(new[] { "train" }, 1, 1, 0, "h:1", 3, null, null, "--rank and --world-size go together")]
    [InlineData(new[] { "train" }, 1, 1, 0, "h:1", 3, 3, null, "--rank 3 is not a rank of --world-size 3")]
    [InlineData(new[] { "train" }, 2, 1, 0, "h:1", 0, 2, null, "start one process")]
    [InlineData(new[] { "train" }, 3, 1, 0, null, null, null, "0,1", "3 processes need 3 GPUs")]
    public void Impossible_launches_are_refused_with_what_to_do(string[] command, int gpus, int nodes, int nodeRank, string? master, int? rank, int? world, string? visible, string message) =>
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => LaunchPlan.Create(command, gpus, nodes, nodeRank, master, rank, world, visible)).Message);

    [Fact]
    public void A_worker_reads_its_rank_world_size_and_rendezvous_from_the_environment()
    {
        Assert.Null(DataParallelWorker.FromEnvironment(new Hashtable()));
        var worker = DataParallelWorker.FromEnvironment(new Hashtable { ["FLORA_WORLD_SIZE"] = "4", ["FLORA_RANK"] = "3", ["FLORA_MASTER"] = "h:29500" });
        Assert.Equal(new DataParallelWorker(3, 4, "h:29500"), worker);
        Assert.Contains("not a rank", Assert.Throws<FloraException>(() =>
            DataParallelWorker.FromEnvironment(new Hashtable { ["FLORA_WORLD_SIZE"] = "2", ["FLORA_RANK"] = "2", ["FLORA_MASTER"] = "f" })).Message);
        Assert.Contains("FLORA_MASTER is not set", Assert.Throws<FloraException>(() =>
            DataParallelWorker.FromEnvironment(new Hashtable { ["FLORA_WORLD_SIZE"] = "2", ["FLORA_RANK"] = "0" })).Message);
    }

    [Fact]
    public void Launched_ranks_that_fail_report_their_error_with_their_rank_and_the_launch_fails()
    {
        // Real processes of this program; without --device cuda each rank refuses at once, before loading anything.
        string output = Path.Combine(Path.GetTempPath(), $"flora-launch-{Guid.NewGuid():N}");
        var (code, _, error) = TestCli.RunCli("launch", "-n", "2", "--", "train", "--device", "cpu", "--out", output);
        Assert.Equal(1, code);
        Assert.Matches(@"error: rank [01] exited with code 1; stopped the other ranks", error);   // whichever failed first

        // A rank other than 0 prints only errors, forwarded with its rank (rank 0 writes to the terminal itself).
        (code, _, error) = TestCli.RunCli("launch", "--rank", "1", "--world-size", "2", "--master", Path.Combine(output, "rv"), "--", "train", "--device", "cpu", "--out", output);
        Assert.Equal(1, code);
        Assert.Contains("[rank 1] error: data-parallel training runs on GPUs through NCCL: pass --device cuda", error);
        Assert.False(Directory.Exists(output));
    }
}
