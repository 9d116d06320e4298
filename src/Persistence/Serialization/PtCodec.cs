namespace PtActors.Persistence.Serialization;

/// <summary>Writes a value's payload (after the version byte, which the serializer writes).</summary>
public delegate void PtWrite<in T>(PtWriter writer, T value);

/// <summary>
/// Reads a payload written by this codec at <paramref name="version"/> (any version from the codec's
/// MinVersion to its Version); the serializer checks that every byte was consumed afterwards.
/// </summary>
public delegate T PtRead<out T>(ref PtReader reader, byte version);

/// <summary>Marks a type stored by <see cref="PtSerializer"/> (events, snapshots); the HOCON binds this interface to it.</summary>
public interface IPtPersistable;

/// <summary>A group of codecs registered together; named in HOCON under serialization-settings.ptb.codec-sets.</summary>
public interface IPtCodecSet
{
    void Register(PtCodecRegistry registry);
}

/// <summary>One registered type: its stable manifest, the version it writes, the oldest version it reads.</summary>
public abstract class PtCodec
{
    private protected PtCodec(string manifest, byte version, byte minVersion, Type type)
    {
        Manifest = manifest;
        Version = version;
        MinVersion = minVersion;
        Type = type;
    }

    /// <summary>The stable short name stored with every payload instead of a CLR type name.</summary>
    public string Manifest { get; }

    /// <summary>The format version written as the payload's first byte.</summary>
    public byte Version { get; }

    /// <summary>The oldest format version the reader still accepts.</summary>
    public byte MinVersion { get; }

    public Type Type { get; }

    internal abstract void Write(PtWriter writer, object value);

    internal abstract object Read(ref PtReader reader, byte version);
}

internal sealed class PtCodec<T>(string manifest, byte version, byte minVersion, PtWrite<T> write, PtRead<T> read)
    : PtCodec(manifest, version, minVersion, typeof(T))
    where T : class
{
    internal override void Write(PtWriter writer, object value) => write(writer, (T)value);

    internal override object Read(ref PtReader reader, byte version) => read(ref reader, version);
}
