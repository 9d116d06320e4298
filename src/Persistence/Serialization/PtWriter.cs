using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.Serialization;
using System.Text;

namespace PtActors.Persistence.Serialization;

/// <summary>
/// Appends the primitives of the PtSerializer wire format to a buffer: LEB128 varints for counts,
/// sizes and addresses, zigzag varints for signed values, little-endian fixed-width integers,
/// length-prefixed strict UTF-8 strings.
/// </summary>
public sealed class PtWriter
{
    internal static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly IBufferWriter<byte> _out;

    public PtWriter(IBufferWriter<byte> output) => _out = output;

    public void WriteByte(byte value)
    {
        _out.GetSpan(1)[0] = value;
        _out.Advance(1);
    }

    public void WriteBool(bool value) => WriteByte(value ? (byte)1 : (byte)0);

    /// <summary>Unsigned LEB128: 1 byte below 128, at most 10 bytes.</summary>
    public void WriteVarUInt64(ulong value)
    {
        var span = _out.GetSpan(10);
        int n = 0;
        while (value >= 0x80)
        {
            span[n++] = (byte)(value | 0x80);
            value >>= 7;
        }
        span[n++] = (byte)value;
        _out.Advance(n);
    }

    public void WriteVarUInt32(uint value) => WriteVarUInt64(value);

    /// <summary>Zigzag then LEB128: small magnitudes of either sign stay short.</summary>
    public void WriteVarInt64(long value) => WriteVarUInt64((ulong)((value << 1) ^ (value >> 63)));

    /// <summary>A non-negative count or length as a varint.</summary>
    public void WriteCount(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        WriteVarUInt64((ulong)count);
    }

    public void WriteInt32(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(_out.GetSpan(4), value);
        _out.Advance(4);
    }

    public void WriteInt64(long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(_out.GetSpan(8), value);
        _out.Advance(8);
    }

    public void WriteUInt64(ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_out.GetSpan(8), value);
        _out.Advance(8);
    }

    /// <summary>Varint byte length, then the UTF-8 bytes. A string with a lone surrogate is refused.</summary>
    public void WriteString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        int length;
        try
        {
            length = StrictUtf8.GetByteCount(value);
        }
        catch (EncoderFallbackException e)
        {
            throw new SerializationException($"PtSerializer: a string is not valid UTF-16 (lone surrogate) and cannot be stored: {e.Message}", e);
        }
        WriteCount(length);
        if (length == 0) return;
        var span = _out.GetSpan(length);
        StrictUtf8.GetBytes(value, span);
        _out.Advance(length);
    }

    /// <summary>Varint length, then the bytes.</summary>
    public void WriteBytes(ReadOnlySpan<byte> value)
    {
        WriteCount(value.Length);
        WriteRaw(value);
    }

    /// <summary>
    /// An actor reference, as the path Akka gives it for the transport at hand (with the node's address when a
    /// remote or cluster transport is serializing; what <see cref="PtReader.ReadActorRef"/> resolves).
    /// </summary>
    public void WriteActorRef(Akka.Actor.IActorRef actor)
    {
        ArgumentNullException.ThrowIfNull(actor);
        WriteString(Akka.Serialization.Serialization.SerializedActorPath(actor));
    }

    /// <summary>The bytes with no length prefix.</summary>
    public void WriteRaw(ReadOnlySpan<byte> value)
    {
        if (value.IsEmpty) return;
        value.CopyTo(_out.GetSpan(value.Length));
        _out.Advance(value.Length);
    }
}
