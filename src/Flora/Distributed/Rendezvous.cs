using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Flora.Distributed;

/// <summary>
/// How the ranks of a run meet: rank 0 makes the communicator's unique id (NCCL's 128 bytes) and hands it to the
/// others through <see cref="Master"/>, which is either
/// <list type="bullet">
/// <item>a file path (on one machine, or a file system every node shares): rank 0 writes the id to a temporary
/// name and renames it into place; the other ranks wait for the file to appear; rank 0 deletes it once every
/// rank has joined (<see cref="Finish"/>);</item>
/// <item>HOST:PORT: rank 0 listens on PORT (every interface) and sends the id to each rank that connects; the
/// others connect to HOST:PORT, retrying until rank 0 is up.</item>
/// </list>
/// This exchanges the id and nothing else: gradients travel through NCCL. Each message carries the world size,
/// so that a rank started with another world size is refused instead of waiting forever.
/// </summary>
public sealed class Rendezvous
{
    private static ReadOnlySpan<byte> Magic => "FLORA-RV"u8;
    private const int HeaderBytes = 8 + 4;
    private TcpListener? _listener;
    private Task? _serving;

    /// <summary>A rendezvous of <paramref name="rank"/> of <paramref name="worldSize"/> through <paramref name="master"/>; waits up to <paramref name="timeout"/> (default five minutes).</summary>
    public Rendezvous(string master, int rank, int worldSize, TimeSpan? timeout = null)
    {
        if (string.IsNullOrWhiteSpace(master)) throw new ArgumentException("the rendezvous needs a file path or HOST:PORT");
        if (worldSize <= 0) throw new ArgumentException($"world size must be positive, got {worldSize}");
        if (rank < 0 || rank >= worldSize) throw new ArgumentException($"rank {rank} is outside a world of {worldSize}");
        Master = master;
        Rank = rank;
        WorldSize = worldSize;
        Timeout = timeout ?? TimeSpan.FromMinutes(5);
        Endpoint = ParseEndpoint(master);
    }

    /// <summary>The file path or HOST:PORT the ranks meet at.</summary>
    public string Master { get; }

    /// <summary>This process's rank.</summary>
    public int Rank { get; }

    /// <summary>The number of ranks.</summary>
    public int WorldSize { get; }

    /// <summary>How long a rank waits for the others before giving up.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>(host, port) when <see cref="Master"/> is HOST:PORT; null for a file.</summary>
    public (string Host, int Port)? Endpoint { get; }

    /// <summary>
    /// HOST:PORT when the text ends in ":digits" and holds no path separator (IPv6 in brackets: [::1]:29500);
    /// anything else is a file path.
    /// </summary>
    public static (string Host, int Port)? ParseEndpoint(string master)
    {
        int colon = master.LastIndexOf(':');
        if (colon <= 0 || master.Contains('/') || master.Contains('\\')) return null;
        if (!int.TryParse(master.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int port)) return null;
        if (port is <= 0 or > 65535) throw new ArgumentException($"rendezvous '{master}': port {port} is outside 1..65535");
        string host = master[..colon].Trim('[', ']');
        return (host, port);
    }

    /// <summary>
    /// Rank 0: <paramref name="make"/> the id and publish it; other ranks: wait for rank 0's id. Returns the id.
    /// </summary>
    public byte[] Exchange(Func<byte[]> make)
    {
        if (Rank == 0)
        {
            byte[] id = make();
            Publish(id);
            return id;
        }
        return Endpoint is { } e ? Connect(e.Host, e.Port) : WaitForFile();
    }

    /// <summary>Rank 0, once every rank has joined: removes the rendezvous file, stops listening.</summary>
    public void Finish()
    {
        if (Rank != 0) return;
        _listener?.Stop();
        try { _serving?.Wait(TimeSpan.FromSeconds(1)); } catch (AggregateException) { }
        _listener = null;
        if (Endpoint is null && File.Exists(Master)) File.Delete(Master);
    }

    private byte[] Message(byte[] id)
    {
        var message = new byte[HeaderBytes + id.Length];
        Magic.CopyTo(message);
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(8), WorldSize);
        id.CopyTo(message, HeaderBytes);
        return message;
    }

    private byte[] Read(ReadOnlySpan<byte> message, string source)
    {
        if (message.Length < HeaderBytes || !message[..8].SequenceEqual(Magic))
            throw new FloraException($"rendezvous {source}: not a Flora rendezvous message");
        int world = BinaryPrimitives.ReadInt32LittleEndian(message[8..]);
        if (world != WorldSize)
            throw new RankMismatchException($"rendezvous {source}: rank 0 runs a world of {world} ranks, this rank was started for {WorldSize}");
        return message[HeaderBytes..].ToArray();
    }

    private void Publish(byte[] id)
    {
        byte[] message = Message(id);
        if (Endpoint is { } e)
        {
            _listener = new TcpListener(IPAddress.Any, e.Port);
            try { _listener.Start(WorldSize); }
            catch (SocketException x) { throw new FloraException($"rendezvous {Master}: cannot listen on port {e.Port} ({x.Message}); choose another port"); }
            _serving = Task.Run(() => Serve(_listener, message));
            return;
        }
        string directory = Path.GetDirectoryName(Path.GetFullPath(Master))!;
        Directory.CreateDirectory(directory);
        string temporary = $"{Master}.{Environment.ProcessId}.tmp";
        File.WriteAllBytes(temporary, message);
        File.Move(temporary, Master, overwrite: true);
    }

    /// <summary>Sends the message to each of the other ranks as it connects, until all have or the listener stops.</summary>
    private async Task Serve(TcpListener listener, byte[] message)
    {
        try
        {
            for (int served = 1; served < WorldSize; served++)
            {
                using var client = await listener.AcceptTcpClientAsync().ConfigureAwait(false);
                await client.GetStream().WriteAsync(message).ConfigureAwait(false);
            }
        }
        catch (ObjectDisposedException) { }
        catch (SocketException) { }
    }

    private byte[] Connect(string host, int port)
    {
        var deadline = DateTime.UtcNow + Timeout;
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(host, port);
                using var stream = client.GetStream();
                var message = new byte[HeaderBytes + 4096];
                int length = 0, read;
                while ((read = stream.Read(message, length, message.Length - length)) > 0) length += read;
                return Read(message.AsSpan(0, length), Master);
            }
            catch (SocketException e) { last = e; }
            catch (IOException e) { last = e; }
            Thread.Sleep(200);
        }
        throw new FloraException($"rendezvous {Master}: rank {Rank} could not get the id from rank 0 within {Timeout.TotalSeconds:F0} s ({last?.Message ?? "no answer"}); is rank 0 running, and is the port reachable?");
    }

    private byte[] WaitForFile()
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (File.Exists(Master))
            {
                try { return Read(File.ReadAllBytes(Master), Master); }
                catch (IOException) { }                      // being replaced: try again
            }
            Thread.Sleep(100);
        }
        throw new FloraException($"rendezvous {Master}: rank {Rank} waited {Timeout.TotalSeconds:F0} s for rank 0 to write the file; is rank 0 running with the same --master?");
    }
}
