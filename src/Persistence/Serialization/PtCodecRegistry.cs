using System.Buffers;
using System.Runtime.Serialization;

namespace PtActors.Persistence.Serialization;

/// <summary>
/// The table of (manifest, version, writer, reader) codecs behind <see cref="PtSerializer"/>, and the
/// framing shared by all of them: payload = version byte, then the codec's fields; nothing after.
/// Register everything first; <see cref="Freeze"/> makes the table read-only and safe to share.
/// </summary>
public sealed class PtCodecRegistry
{
    /// <summary>Longest allowed manifest; manifests are stored with every row, so keep them short.</summary>
    public const int MaxManifestLength = 32;

    private const int MaxPooledBufferBytes = 1 << 20;

    private readonly Dictionary<string, PtCodec> _byManifest = new(StringComparer.Ordinal);
    private readonly Dictionary<Type, PtCodec> _byType = [];
    private bool _frozen;

    [ThreadStatic]
    private static Pooled? t_pooled;

    /// <summary>Every registered codec, in no particular order.</summary>
    public IReadOnlyCollection<PtCodec> Codecs => _byManifest.Values;

    public bool IsFrozen => _frozen;

    /// <summary>
    /// Registers <typeparamref name="T"/> under <paramref name="manifest"/> (lower-case ASCII letters,
    /// digits, '.', '-'; at most 32 characters), writing format <paramref name="version"/> and reading
    /// every version from <paramref name="minVersion"/> (default: only the current one) up to it.
    /// </summary>
    public PtCodecRegistry Register<T>(string manifest, byte version, PtWrite<T> write, PtRead<T> read, byte? minVersion = null)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(write);
        ArgumentNullException.ThrowIfNull(read);
        if (_frozen) throw new InvalidOperationException("PtCodecRegistry is frozen: register codecs before the serializer is used.");
        ValidateManifest(manifest);
        if (version == 0) throw new ArgumentOutOfRangeException(nameof(version), "format versions start at 1");
        byte min = minVersion ?? version;
        if (min == 0 || min > version)
            throw new ArgumentOutOfRangeException(nameof(minVersion), $"minVersion {min} must be in 1..{version}");
        if (typeof(T).IsAbstract || typeof(T).IsInterface)
            throw new ArgumentException($"{typeof(T)} is abstract: register concrete types (values are looked up by their exact type).");
        if (_byManifest.TryGetValue(manifest, out var other))
            throw new ArgumentException($"manifest '{manifest}' is already registered for {other.Type}");
        if (_byType.TryGetValue(typeof(T), out other))
            throw new ArgumentException($"{typeof(T)} is already registered under manifest '{other.Manifest}'");
        var codec = new PtCodec<T>(manifest, version, min, write, read);
        _byManifest.Add(manifest, codec);
        _byType.Add(typeof(T), codec);
        return this;
    }

    /// <summary>Registers every codec of a set.</summary>
    public PtCodecRegistry Register(IPtCodecSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        set.Register(this);
        return this;
    }

    /// <summary>Makes the registry read-only (idempotent); returns it.</summary>
    public PtCodecRegistry Freeze()
    {
        _frozen = true;
        return this;
    }

    public bool TryGetByManifest(string manifest, out PtCodec codec) => _byManifest.TryGetValue(manifest, out codec!);

    public bool TryGetByType(Type type, out PtCodec codec) => _byType.TryGetValue(type, out codec!);

    /// <summary>The manifest of a value's exact type; throws <see cref="SerializationException"/> for an unregistered type.</summary>
    public string ManifestFor(object value) => CodecFor(value).Manifest;

    /// <summary>The payload of <paramref name="value"/>: its codec's version byte, then its fields.</summary>
    public byte[] Serialize(object value)
    {
        var codec = CodecFor(value);
        var pooled = t_pooled ?? new Pooled();
        t_pooled = null; // a codec that serializes recursively gets a buffer of its own
        try
        {
            pooled.Buffer.ResetWrittenCount();
            pooled.Writer.WriteByte(codec.Version);
            try
            {
                codec.Write(pooled.Writer, value);
            }
            catch (Exception e) when (e is not SerializationException)
            {
                throw new SerializationException($"PtSerializer: cannot write '{codec.Manifest}' ({codec.Type.Name}): {e.Message}", e);
            }
            return pooled.Buffer.WrittenSpan.ToArray();
        }
        finally
        {
            if (pooled.Buffer.Capacity <= MaxPooledBufferBytes) t_pooled = pooled;
        }
    }

    /// <summary>
    /// Reads a payload stored under <paramref name="manifest"/>. Throws <see cref="SerializationException"/>
    /// for an unknown manifest, an empty payload, a version outside the codec's range, corrupt fields,
    /// or bytes left over.
    /// </summary>
    public object Deserialize(ReadOnlySpan<byte> payload, string manifest, Akka.Actor.ExtendedActorSystem? system = null)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        if (!_byManifest.TryGetValue(manifest, out var codec))
            throw new SerializationException($"PtSerializer: unknown manifest '{manifest}' (registered: {string.Join(", ", _byManifest.Keys.Order(StringComparer.Ordinal))})");
        var reader = new PtReader(payload, manifest, system);
        if (payload.IsEmpty) throw reader.Corrupt("empty payload (no version byte)");
        byte version = reader.ReadByte();
        if (version < codec.MinVersion || version > codec.Version)
            throw new SerializationException(
                $"PtSerializer: '{manifest}' payload has format version {version}; this build reads versions {codec.MinVersion}..{codec.Version}");
        object result;
        try
        {
            result = codec.Read(ref reader, version);
        }
        catch (Exception e) when (e is not SerializationException)
        {
            throw new SerializationException($"PtSerializer: corrupt '{manifest}' payload: {e.Message}", e);
        }
        reader.EnsureEnd();
        return result;
    }

    private PtCodec CodecFor(object value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (_byType.TryGetValue(value.GetType(), out var codec)) return codec;
        throw new SerializationException($"PtSerializer: no codec registered for {value.GetType()}; register it in an IPtCodecSet listed under serialization-settings.ptb.codec-sets");
    }

    private static void ValidateManifest(string manifest)
    {
        if (manifest.Length is 0 or > MaxManifestLength)
            throw new ArgumentException($"manifest '{manifest}' must have 1..{MaxManifestLength} characters");
        foreach (char c in manifest)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '-'))
                throw new ArgumentException($"manifest '{manifest}' may use only a-z, 0-9, '.' and '-'");
        }
    }

    private sealed class Pooled
    {
        public readonly ArrayBufferWriter<byte> Buffer = new(256);
        public readonly PtWriter Writer;

        public Pooled() => Writer = new PtWriter(Buffer);
    }
}
