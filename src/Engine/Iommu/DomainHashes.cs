using System.Security.Cryptography;

namespace PtActors.Engine;

/// <summary>
/// The two hashes a run's tables are known by, over a set of named domains (sorted by name, ordinal):
/// <see cref="Canonical"/> (<c>table_hash</c>: equal for equal mappings, whatever the allocation history and the
/// accessed/dirty bits) and <see cref="Memory"/> (<c>memory_hash</c>: equal only for byte-identical table memory).
/// A run and every recovery of its journal compute them the same way.
/// </summary>
public static class DomainHashes
{
    /// <summary>SHA-256 (lower-case hex) of every domain's name and canonical table (<see cref="IommuDomain.WriteCanonical(IByteSink)"/>).</summary>
    public static string Canonical(IEnumerable<KeyValuePair<string, IommuDomain>> domains)
        => Hash(domains, static (d, sink) => d.WriteCanonical(sink));

    /// <summary>SHA-256 (lower-case hex) of every domain's name and table memory as it is (<see cref="IommuDomain.WriteMemory(IByteSink)"/>).</summary>
    public static string Memory(IEnumerable<KeyValuePair<string, IommuDomain>> domains)
        => Hash(domains, static (d, sink) => d.WriteMemory(sink));

    /// <summary><see cref="Canonical(IEnumerable{KeyValuePair{string, IommuDomain}})"/> of the tables <paramref name="images"/> were taken of.</summary>
    public static string Canonical(IEnumerable<DomainImage> images)
        => Hash(Named(images), static (i, sink) => sink.Append(i.Canonical));

    /// <summary><see cref="Memory(IEnumerable{KeyValuePair{string, IommuDomain}})"/> of the tables <paramref name="images"/> were taken of.</summary>
    public static string Memory(IEnumerable<DomainImage> images)
        => Hash(Named(images), static (i, sink) => sink.Append(i.Memory));

    /// <summary>
    /// The first 8 bytes (big-endian) of <see cref="Memory(IEnumerable{KeyValuePair{string, IommuDomain}})"/> over the
    /// one domain <paramref name="name"/>: what a recording keeps per domain so that a reader can say which domain's
    /// tables differ.
    /// </summary>
    public static ulong MemoryPrefix(string name, IommuDomain domain)
        => PrefixOf(Memory([new KeyValuePair<string, IommuDomain>(name, domain)]));

    /// <summary><see cref="MemoryPrefix(string, IommuDomain)"/> of the table <paramref name="image"/> was taken of.</summary>
    public static ulong MemoryPrefix(DomainImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        return PrefixOf(Memory([image]));
    }

    /// <summary>The first 8 bytes (big-endian) of a hash in hex (at least 16 digits).</summary>
    public static ulong PrefixOf(string hexHash)
    {
        ArgumentNullException.ThrowIfNull(hexHash);
        if (hexHash.Length < 16 || !ulong.TryParse(hexHash.AsSpan(0, 16), System.Globalization.NumberStyles.AllowHexSpecifier,
                System.Globalization.CultureInfo.InvariantCulture, out ulong prefix))
            throw new ArgumentException($"'{hexHash}' is not a hash in hex", nameof(hexHash));
        return prefix;
    }

    private static IEnumerable<KeyValuePair<string, DomainImage>> Named(IEnumerable<DomainImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        foreach (var image in images)
            yield return new KeyValuePair<string, DomainImage>(image.Name, image);
    }

    private static string Hash<T>(IEnumerable<KeyValuePair<string, T>> domains, Action<T, IByteSink> write)
    {
        var sorted = new List<KeyValuePair<string, T>>(domains);
        sorted.Sort(static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var sink = new HashSink(hash);
        foreach (var (name, domain) in sorted)
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            write(domain, sink);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
