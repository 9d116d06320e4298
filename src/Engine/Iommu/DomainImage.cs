using System.Buffers;
using System.Security.Cryptography;

namespace PtActors.Engine;

/// <summary>Where a table's canonical form or memory image is written: a hash, or bytes kept to be hashed elsewhere.</summary>
public interface IByteSink
{
    void Append(ReadOnlySpan<byte> bytes);
}

/// <summary>Feeds what is written to an <see cref="IncrementalHash"/>.</summary>
public sealed class HashSink(IncrementalHash hash) : IByteSink
{
    public void Append(ReadOnlySpan<byte> bytes) => hash.AppendData(bytes);
}

/// <summary>Keeps what is written, in order.</summary>
public sealed class BufferSink : IByteSink
{
    private readonly ArrayBufferWriter<byte> _buffer = new();

    public void Append(ReadOnlySpan<byte> bytes) => _buffer.Write(bytes);

    /// <summary>Everything written so far.</summary>
    public byte[] ToArray() => _buffer.WrittenSpan.ToArray();
}

/// <summary>
/// A domain's table as a run leaves it, in bytes: its canonical form (<see cref="IommuDomain.WriteCanonical(IByteSink)"/>)
/// and its memory (<see cref="IommuDomain.WriteMemory(IByteSink)"/>), from which <see cref="DomainHashes"/> computes
/// the same hashes as from the table itself. What a lane sends the coordinator at a run's end, so that the run's
/// hashes never need the tables where the coordinator runs (a lane may live on another node).
/// </summary>
/// <param name="Name">The domain's name.</param>
/// <param name="TablePages">Table pages the domain holds.</param>
/// <param name="Canonical">Its canonical form.</param>
/// <param name="Memory">Its memory as it is.</param>
public sealed record DomainImage(string Name, int TablePages, byte[] Canonical, byte[] Memory)
{
    /// <summary>The image of <paramref name="domain"/>'s table, named <paramref name="name"/>.</summary>
    public static DomainImage Of(string name, IommuDomain domain)
    {
        ArgumentNullException.ThrowIfNull(domain);
        var canonical = new BufferSink();
        domain.WriteCanonical(canonical);
        var memory = new BufferSink();
        domain.WriteMemory(memory);
        return new DomainImage(name, domain.TablePages, canonical.ToArray(), memory.ToArray());
    }
}
