using System.Globalization;

namespace PtActors.Engine.Replay;

/// <summary>
/// What a recording's end says of one domain, so that a reader of the recording can tell which domain a damaged
/// or incomplete journal changed: how many events its journal holds and the first 8 bytes of the hash of its
/// table memory as the run left it (<see cref="DomainHashes.MemoryPrefix"/>).
/// </summary>
/// <param name="Events">Events in the domain's journal (its last sequence number).</param>
/// <param name="MemoryHash">The first 8 bytes (big-endian) of the SHA-256 of the domain's name and table memory.</param>
public readonly record struct DomainEnd(long Events, ulong MemoryHash)
{
    /// <summary>The hash as 16 lower-case hex digits (the first 16 of the domain's <c>memory_hash</c>).</summary>
    public string HashText => MemoryHash.ToString("x16", CultureInfo.InvariantCulture);
}

/// <summary>The end of every domain of a run, in domain order; equal when the domains' ends are.</summary>
public sealed class RunDomainEnds(IReadOnlyList<DomainEnd> domains) : IEquatable<RunDomainEnds>
{
    /// <summary>None recorded.</summary>
    public static readonly RunDomainEnds None = new([]);

    public IReadOnlyList<DomainEnd> Domains { get; } = domains;

    /// <summary>
    /// The ends of domains <paramref name="names"/> (in domain order): <paramref name="events"/> gives each one's
    /// journal length, <paramref name="tables"/> its table as the run left it.
    /// </summary>
    public static RunDomainEnds Of(IReadOnlyList<string> names, Func<int, long> events, IReadOnlyDictionary<string, IommuDomain> tables)
    {
        ArgumentNullException.ThrowIfNull(tables);
        return Of(names, events, name => tables.TryGetValue(name, out var table) ? DomainHashes.MemoryPrefix(name, table) : null, nameof(tables));
    }

    /// <summary>The ends of domains <paramref name="names"/> (in domain order) from the images of their tables.</summary>
    public static RunDomainEnds Of(IReadOnlyList<string> names, Func<int, long> events, IReadOnlyDictionary<string, DomainImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        return Of(names, events, name => images.TryGetValue(name, out var image) ? DomainHashes.MemoryPrefix(image) : null, nameof(images));
    }

    private static RunDomainEnds Of(IReadOnlyList<string> names, Func<int, long> events, Func<string, ulong?> memoryPrefix, string what)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(events);
        var ends = new DomainEnd[names.Count];
        for (int d = 0; d < ends.Length; d++)
            ends[d] = new DomainEnd(events(d), memoryPrefix(names[d]) ?? throw new ArgumentException($"no table for domain '{names[d]}'", what));
        return new RunDomainEnds(ends);
    }

    public bool Equals(RunDomainEnds? other) => other is not null && Domains.SequenceEqual(other.Domains);

    public override bool Equals(object? obj) => Equals(obj as RunDomainEnds);

    public override int GetHashCode() => Domains.Count == 0 ? 0 : HashCode.Combine(Domains.Count, Domains[0], Domains[^1]);
}
