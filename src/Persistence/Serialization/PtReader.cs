using System.Buffers.Binary;
using System.Runtime.Serialization;
using System.Text;

namespace PtActors.Persistence.Serialization;

/// <summary>
/// Reads what <see cref="PtWriter"/> wrote, validating as it goes: every read past the end, an
/// overlong or overflowing varint, a length larger than what is left, a bad bool or invalid UTF-8
/// throws a <see cref="SerializationException"/> naming the manifest being read.
/// </summary>
public ref struct PtReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _pos;

    public PtReader(ReadOnlySpan<byte> data, string manifest, Akka.Actor.ExtendedActorSystem? system = null)
    {
        _data = data;
        _pos = 0;
        Manifest = manifest;
        System = system;
    }

    /// <summary>The actor system deserializing (resolves actor references); null outside one.</summary>
    public Akka.Actor.ExtendedActorSystem? System { get; }

    /// <summary>An actor reference written by <see cref="PtWriter.WriteActorRef"/>, resolved in <see cref="System"/>.</summary>
    public Akka.Actor.IActorRef ReadActorRef()
    {
        string path = ReadString();
        if (System is null)
            throw Corrupt($"actor reference {path} read outside an actor system");
        return System.Provider.ResolveActorRef(path);
    }

    /// <summary>The manifest of the payload, for error messages.</summary>
    public string Manifest { get; }

    public readonly int Position => _pos;

    public readonly int Remaining => _data.Length - _pos;

    public byte ReadByte()
    {
        if (_pos >= _data.Length) throw Corrupt("unexpected end of data");
        return _data[_pos++];
    }

    public bool ReadBool() => ReadByte() switch
    {
        0 => false,
        1 => true,
        var b => throw Corrupt($"invalid bool byte {b}"),
    };

    public ulong ReadVarUInt64()
    {
        // Most values of a journal (deltas, counts, kinds) fit one byte: read those without the loop.
        if ((uint)_pos < (uint)_data.Length && _data[_pos] < 0x80)
            return _data[_pos++];
        return ReadVarUInt64Slow();
    }

    private ulong ReadVarUInt64Slow()
    {
        // Locals instead of the fields: the loop runs in registers, the position is stored once.
        var data = _data;
        int pos = _pos;
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if ((uint)pos >= (uint)data.Length)
            {
                _pos = pos;
                throw Corrupt("unexpected end of data");
            }
            byte b = data[pos++];
            if (shift == 63 && b > 1)
            {
                _pos = pos;
                throw Corrupt("varint overflows 64 bits");
            }
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                _pos = pos;
                if (b == 0 && shift > 0) throw Corrupt("varint has a redundant trailing zero byte");
                return result;
            }
        }
        _pos = pos;
        throw Corrupt("varint longer than 10 bytes");
    }

    public uint ReadVarUInt32()
    {
        ulong v = ReadVarUInt64();
        if (v > uint.MaxValue) throw Corrupt($"value {v} does not fit 32 bits");
        return (uint)v;
    }

    public long ReadVarInt64()
    {
        ulong v = ReadVarUInt64();
        return (long)(v >> 1) ^ -(long)(v & 1);
    }

    /// <summary>
    /// A count of items each at least <paramref name="minItemBytes"/> long: a count that could not fit
    /// in what is left is corrupt (so a flipped byte never makes a reader allocate gigabytes).
    /// </summary>
    public int ReadCount(int minItemBytes = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(minItemBytes);
        ulong v = ReadVarUInt64();
        if (v > int.MaxValue) throw Corrupt($"count {v} is too large");
        if (minItemBytes > 0 && v > (ulong)(Remaining / minItemBytes))
            throw Corrupt($"count {v} exceeds the {Remaining} bytes left");
        return (int)v;
    }

    public int ReadInt32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

    public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    public ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    public string ReadString()
    {
        int length = ReadCount(1);
        if (length == 0) return string.Empty;
        var bytes = Take(length);
        try
        {
            return PtWriter.StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Corrupt("string is not valid UTF-8");
        }
    }

    public byte[] ReadBytes() => Take(ReadCount(1)).ToArray();

    /// <summary>The next <paramref name="count"/> bytes, without a length prefix.</summary>
    public ReadOnlySpan<byte> ReadRaw(int count) => Take(count);

    /// <summary>Throws unless every byte was consumed (trailing bytes mean a mismatched reader or corruption).</summary>
    public readonly void EnsureEnd()
    {
        if (_pos != _data.Length) throw Corrupt($"{_data.Length - _pos} unread trailing bytes");
    }

    /// <summary>An exception for corrupt data, naming the manifest and the position.</summary>
    public readonly SerializationException Corrupt(string what) =>
        new($"PtSerializer: corrupt '{Manifest}' payload at byte {_pos} of {_data.Length}: {what}");

    private ReadOnlySpan<byte> Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > Remaining) throw Corrupt($"needs {count} bytes, {Remaining} left");
        var s = _data.Slice(_pos, count);
        _pos += count;
        return s;
    }
}
