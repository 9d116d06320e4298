using System.Buffers;
using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using PtActors.Engine.Replay;
using PtActors.Persistence.Runs;
using PtActors.Persistence.Serialization;
using Xunit;

namespace PtActors.Persistence.Tests;

public sealed class SerializerTests
{
    private static readonly PtCodecRegistry Registry = PtSerializer.BuildRegistry(null);

    public static readonly string[] EdgeStrings =
    [
        "", "a", "run-1", "with space", "quote\"back\\slash", "ünïcödé", "日本語", "emoji 🧪 pair", "nul\0byte",
        "new\nline", new string('x', 127), new string('y', 128), new string('z', 70_000),
    ];

    public static readonly long[] EdgeLongs =
    [
        0, 1, -1, 63, -64, 64, -65, 127, 128, 8191, 8192, int.MaxValue, int.MinValue, 1_700_000_000_000,
        long.MaxValue, long.MinValue, long.MaxValue - 1, long.MinValue + 1,
    ];

    public static IEnumerable<object[]> RunStartedCases()
    {
        foreach (var s in EdgeStrings) yield return [new RunStarted(s, "cfg", 42)];
        foreach (var s in EdgeStrings) yield return [new RunStarted("r", s, -42)];
        foreach (var l in EdgeLongs) yield return [new RunStarted("r", "c", l)];
        foreach (var s in EdgeStrings) yield return [new RunStarted("r", "c", 1, s)];
    }

    /// <summary>One value of every registered type (the test below checks that none is missing).</summary>
    public static IEnumerable<object[]> OneOfEachType()
    {
        yield return [new RunStarted("run-1", "abc123", 1_700_000_000_000)];
        yield return [new RunRegistrySnapshot([new RunStarted("a", "b", 1), new RunStarted("c", "d", -2)])];
        yield return [new RunEnded("a", RunOutcome.Completed, 5, 6, "h", "m", "")];
    }

    [Theory]
    [MemberData(nameof(RunStartedCases))]
    public void RunStarted_round_trips(RunStarted value) => Assert.Equal(value, RoundTrip(value));

    [Fact]
    public void Snapshot_round_trips_empty_one_and_many()
    {
        var many = Enumerable.Range(0, 2000)
            .Select(i => new RunStarted($"run-{i}", i % 3 == 0 ? "" : $"h{i}", EdgeLongs[i % EdgeLongs.Length])).ToArray();
        foreach (var runs in new[] { Array.Empty<RunStarted>(), [new RunStarted("", "", 0)], many })
        {
            var s = new RunRegistrySnapshot(runs);
            Assert.Equal(s, RoundTrip(s));
        }
        var ends = new[]
        {
            new RunEnded("run-1", RunOutcome.Completed, 1_700_000_000_000, 2_000_000, "ab", "cd", ""),
            new RunEnded("run-2", RunOutcome.Failed, -1, 0, "", "", "domain dom0003 failed"),
            new RunEnded("run-3", RunOutcome.Completed, 7, 8, "ef", "01", "")
            {
                WindDown = [new LaneWindDown(1000, 1003), new LaneWindDown(0, 0), new LaneWindDown(long.MaxValue, long.MaxValue)],
            },
        };
        var withEnds = new RunRegistrySnapshot(many, ends);
        Assert.Equal(withEnds, RoundTrip(withEnds));
        foreach (var end in ends)
            Assert.Equal(end, RoundTrip(end));
    }

    [Fact]
    public void A_run_end_keeps_its_lanes_wind_down_and_versions_1_and_2_read_without()
    {
        var end = new RunEnded("r", RunOutcome.Completed, 1, 2, "h", "m", "") { WindDown = [new LaneWindDown(5, 9)] };
        var bytes = Registry.Serialize(end);
        Assert.Equal(3, bytes[0]);
        Assert.Equal([0x0a, 0x08, 0x00], bytes[^3..]);   // zigzag(5), zigzag(9 - 5), no domains
        Assert.Equal(end, RoundTrip(end));
        Assert.NotEqual(end, end with { WindDown = [new LaneWindDown(5, 10)] });
        // Version 1 (before lanes were recorded): the same fields without the lane list; version 2 without domains.
        var v1 = Registry.Deserialize([1, .. bytes[1..^4]], "run-ended");
        Assert.Equal(end with { WindDown = [] }, v1);
        var v2 = Registry.Deserialize([2, .. bytes[1..^1]], "run-ended");
        Assert.Equal(end, v2);
        Assert.Throws<System.Runtime.Serialization.SerializationException>(() => Registry.Serialize(end with { WindDown = [new LaneWindDown(5, 4)] }));
    }

    [Fact]
    public void A_run_end_keeps_each_domains_journal_length_and_hash()
    {
        var end = new RunEnded("r", RunOutcome.Completed, 1, 2, "h", "m", "")
        {
            WindDown = [new LaneWindDown(5, 9)],
            Domains = [new DomainEnd(0, 0), new DomainEnd(42, 0x0123_4567_89ab_cdef), new DomainEnd(long.MaxValue, ulong.MaxValue)],
        };
        var bytes = Registry.Serialize(end);
        Assert.Equal(end, RoundTrip(end));
        Assert.NotEqual(end, end with { Domains = [new DomainEnd(0, 0), new DomainEnd(41, 0x0123_4567_89ab_cdef), new DomainEnd(long.MaxValue, ulong.MaxValue)] });
        Assert.Equal("0123456789abcdef", end.Domains[1].HashText);
        // A domain count larger than the bytes left, a hash cut short: named, not an exception of the runtime.
        var e = Assert.Throws<System.Runtime.Serialization.SerializationException>(() => Registry.Deserialize(bytes[..^3], "run-ended"));
        Assert.Contains("run-ended", e.Message, StringComparison.Ordinal);
        Assert.Throws<System.Runtime.Serialization.SerializationException>(() => Registry.Serialize(end with { Domains = [new DomainEnd(-1, 0)] }));

        // Inside a registry snapshot: v4 holds v3 ends; a v3 snapshot holds v2 ends (no domains).
        var plain = end with { Domains = [] };
        var snapshot = new RunRegistrySnapshot([new RunStarted("r", "c", 1)], [plain]);
        var snap = Registry.Serialize(snapshot);
        Assert.Equal(4, snap[0]);
        Assert.Equal(snapshot, RoundTrip(snapshot));
        Assert.Equal(snapshot, Registry.Deserialize([3, .. snap[1..^1]], "runs-snapshot"));
        var full = new RunRegistrySnapshot([new RunStarted("r", "c", 1)], [end]);
        Assert.Equal(full, RoundTrip(full));
    }

    [Fact]
    public void Every_registered_type_has_a_round_trip_case()
    {
        var covered = OneOfEachType().Select(c => c[0].GetType()).ToHashSet();
        Assert.All(Registry.Codecs, c => Assert.Contains(c.Type, covered));
        foreach (var c in OneOfEachType()) Assert.Equal(c[0], RoundTrip(c[0]));
    }

    [Fact]
    public void Manifests_are_stable_short_names()
    {
        Assert.Equal("run-started", Registry.ManifestFor(new RunStarted("a", "b", 1)));
        Assert.Equal("runs-snapshot", Registry.ManifestFor(new RunRegistrySnapshot([])));
        Assert.All(Registry.Codecs, c => Assert.DoesNotContain("PtActors", c.Manifest, StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void Payload_is_version_byte_then_compact_fields()
    {
        // version 2, "r" (len 1), "" (len 0), zigzag(-1) = 1, config "" (len 0)
        Assert.Equal(new byte[] { 2, 1, (byte)'r', 0, 1, 0 }, Registry.Serialize(new RunStarted("r", "", -1)));
        var bytes = Registry.Serialize(new RunStarted("run-1", "abc", 1_700_000_000_000));
        Assert.True(bytes.Length <= 1 + 6 + 4 + 6 + 1, $"{bytes.Length} bytes");
        // A version 1 event (written before the configuration was kept) still reads, with an empty configuration.
        Assert.Equal(new RunStarted("r", "", -1), Registry.Deserialize([1, 1, (byte)'r', 0, 1], "run-started"));
    }

    [Fact]
    public async Task Akka_serialization_picks_PtSerializer_for_persisted_types()
    {
        var system = ActorSystem.Create("ser", RegistryAsk.Quiet.WithFallback(PersistenceConfig.InMemory()));
        var serialization = system.Serialization;
        foreach (var c in OneOfEachType())
        {
            var value = c[0];
            var serializer = serialization.FindSerializerFor(value);
            Assert.IsType<PtSerializer>(serializer);
            Assert.Equal(4711, serializer.Identifier);
            string manifest = Akka.Serialization.Serialization.ManifestFor(serializer, value);
            var bytes = serializer.ToBinary(value);
            Assert.Equal(value, serialization.Deserialize(bytes, serializer.Identifier, manifest));
        }
        await system.Terminate();
    }

    [Fact]
    public void Every_truncation_is_rejected()
    {
        foreach (var c in OneOfEachType())
        {
            var bytes = Registry.Serialize(c[0]);
            string manifest = Registry.ManifestFor(c[0]);
            for (int len = 0; len < bytes.Length; len++)
            {
                var cut = bytes[..len];
                var e = Assert.Throws<SerializationException>(() => Registry.Deserialize(cut, manifest));
                Assert.Contains(manifest, e.Message);
            }
        }
    }

    [Fact]
    public void Trailing_bytes_are_rejected()
    {
        var bytes = Registry.Serialize(new RunStarted("a", "b", 3)).Append((byte)0).ToArray();
        var e = Assert.Throws<SerializationException>(() => Registry.Deserialize(bytes, "run-started"));
        Assert.Contains("trailing", e.Message);
    }

    [Theory]
    [InlineData(new byte[] { 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 })] // varint > 10 bytes
    [InlineData(new byte[] { 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F })]     // varint overflows 64 bits
    [InlineData(new byte[] { 1, 0x81, 0x00, (byte)'a', 0, 0 })]                                    // non-canonical varint
    [InlineData(new byte[] { 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0 })]                              // string length beyond the data
    [InlineData(new byte[] { 1, 2, 0xC3, 0x28, 0, 0 })]                                             // invalid UTF-8
    [InlineData(new byte[] { 1, 1, 0xFF, 0, 0 })]                                                   // invalid UTF-8 byte
    public void Corrupt_run_started_is_rejected(byte[] bytes)
    {
        var e = Assert.Throws<SerializationException>(() => Registry.Deserialize(bytes, "run-started"));
        Assert.Contains("corrupt 'run-started'", e.Message);
    }

    [Fact]
    public void A_huge_snapshot_count_is_rejected_without_allocating()
    {
        // count = int.MaxValue, then almost nothing
        var bytes = new byte[] { 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0, 0, 0 };
        var e = Assert.Throws<SerializationException>(() => Registry.Deserialize(bytes, "runs-snapshot"));
        Assert.Contains("count", e.Message);
    }

    [Fact]
    public void Random_corruption_never_escapes_as_another_exception()
    {
        var rng = new Random(7);
        var good = Registry.Serialize(new RunRegistrySnapshot([new RunStarted("abc", "def", 123456), new RunStarted("x", "", -5)]));
        for (int i = 0; i < 5000; i++)
        {
            var bad = (byte[])good.Clone();
            for (int k = rng.Next(1, 4); k > 0; k--) bad[rng.Next(bad.Length)] = (byte)rng.Next(256);
            try
            {
                Registry.Deserialize(bad, "runs-snapshot");
            }
            catch (SerializationException)
            {
            }
        }
    }

    [Fact]
    public void Unknown_manifest_is_rejected_by_name()
    {
        var e = Assert.Throws<SerializationException>(() => Registry.Deserialize(new byte[] { 1, 0, 0, 0 }, "no-such-thing"));
        Assert.Contains("unknown manifest 'no-such-thing'", e.Message);
        Assert.Throws<SerializationException>(() => Registry.Deserialize(new byte[] { 1, 0, 0, 0 }, "PtActors.Persistence.Runs.RunStarted, PtActors.Persistence"));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(255)]
    public void Unknown_version_is_rejected(byte version)
    {
        var bytes = Registry.Serialize(new RunStarted("a", "b", 1));
        bytes[0] = version;
        var e = Assert.Throws<SerializationException>(() => Registry.Deserialize(bytes, "run-started"));
        Assert.Contains($"format version {version}", e.Message);
    }

    [Fact]
    public void Empty_payload_is_rejected()
    {
        var e = Assert.Throws<SerializationException>(() => Registry.Deserialize(ReadOnlySpan<byte>.Empty, "run-started"));
        Assert.Contains("empty payload", e.Message);
    }

    [Fact]
    public void Unregistered_type_and_lone_surrogate_are_refused_on_write()
    {
        Assert.Throws<SerializationException>(() => Registry.Serialize("a string"));
        var e = Assert.Throws<SerializationException>(() => Registry.Serialize(new RunStarted("bad\uD800", "", 0)));
        Assert.Contains("surrogate", e.Message);
    }

    [Fact]
    public void Older_versions_are_read_when_the_codec_allows_them()
    {
        var registry = new PtCodecRegistry()
            .Register<Sample>("sample", 2,
                (w, s) => { w.WriteVarInt64(s.A); w.WriteString(s.B); },
                (ref PtReader r, byte v) => v == 1 ? new Sample(r.ReadVarInt64(), "") : new Sample(r.ReadVarInt64(), r.ReadString()),
                minVersion: 1)
            .Freeze();
        Assert.Equal(new Sample(-3, ""), registry.Deserialize(new byte[] { 1, 5 }, "sample"));
        Assert.Equal(new Sample(-3, "q"), registry.Deserialize(new byte[] { 2, 5, 1, (byte)'q' }, "sample"));
        Assert.Throws<SerializationException>(() => registry.Deserialize(new byte[] { 3, 5, 0 }, "sample"));
        Assert.Throws<InvalidOperationException>(() => registry.Register<Other>("other", 1, (_, _) => { }, (ref PtReader _, byte _) => new Other()));
    }

    [Fact]
    public void Registration_is_validated()
    {
        static void W(PtWriter w, Sample s) { }
        static Sample R(ref PtReader r, byte v) => new(0, "");
        var reg = new PtCodecRegistry().Register<Sample>("sample", 1, W, R);
        Assert.Throws<ArgumentException>(() => reg.Register<Other>("sample", 1, (_, _) => { }, (ref PtReader _, byte _) => new Other()));
        Assert.Throws<ArgumentException>(() => reg.Register<Sample>("sample2", 1, W, R));
        Assert.Throws<ArgumentException>(() => new PtCodecRegistry().Register<Sample>("Upper", 1, W, R));
        Assert.Throws<ArgumentException>(() => new PtCodecRegistry().Register<Sample>("My.Type, Asm", 1, W, R));
        Assert.Throws<ArgumentException>(() => new PtCodecRegistry().Register<Sample>("", 1, W, R));
        Assert.Throws<ArgumentException>(() => new PtCodecRegistry().Register<Sample>(new string('a', 33), 1, W, R));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PtCodecRegistry().Register<Sample>("s", 0, W, R));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PtCodecRegistry().Register<Sample>("s", 2, W, R, minVersion: 3));
    }

    [Fact]
    public void Codec_sets_from_config_are_loaded_and_bad_ones_reported()
    {
        var ok = Akka.Configuration.ConfigurationFactory.ParseString(
            $"codec-sets {{ runs = \"{typeof(RunCodecs).AssemblyQualifiedName}\", extra = \"{typeof(SampleCodecs).AssemblyQualifiedName}\" }}");
        var registry = PtSerializer.BuildRegistry(ok);
        Assert.True(registry.IsFrozen);
        Assert.True(registry.TryGetByManifest("sample", out _));
        Assert.True(registry.TryGetByManifest("run-started", out _));

        var missing = Akka.Configuration.ConfigurationFactory.ParseString("codec-sets { x = \"No.Such.Type, NoAssembly\" }");
        var e = Assert.Throws<Akka.Configuration.ConfigurationException>(() => PtSerializer.BuildRegistry(missing));
        Assert.Contains("No.Such.Type", e.Message);
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(1UL)]
    [InlineData(127UL)]
    [InlineData(128UL)]
    [InlineData(16383UL)]
    [InlineData(16384UL)]
    [InlineData(0xFFFF_FFFFUL)]
    [InlineData(0x0000_FFFF_FFFF_F000UL)] // a 48-bit IOVA
    [InlineData(1UL << 63)]
    [InlineData(ulong.MaxValue)]
    public void Primitives_round_trip(ulong v)
    {
        var buf = new ArrayBufferWriter<byte>();
        var w = new PtWriter(buf);
        w.WriteVarUInt64(v);
        w.WriteVarInt64((long)v);
        w.WriteVarInt64(-(long)v);
        w.WriteUInt64(v);
        w.WriteInt64((long)v);
        w.WriteInt32((int)v);
        w.WriteVarUInt32((uint)v);
        w.WriteBool(v % 2 == 1);
        w.WriteBytes([1, 2, 3]);
        w.WriteByte(0xAB);
        var r = new PtReader(buf.WrittenSpan, "test");
        Assert.Equal(v, r.ReadVarUInt64());
        Assert.Equal((long)v, r.ReadVarInt64());
        Assert.Equal(-(long)v, r.ReadVarInt64());
        Assert.Equal(v, r.ReadUInt64());
        Assert.Equal((long)v, r.ReadInt64());
        Assert.Equal((int)v, r.ReadInt32());
        Assert.Equal((uint)v, r.ReadVarUInt32());
        Assert.Equal(v % 2 == 1, r.ReadBool());
        Assert.Equal(new byte[] { 1, 2, 3 }, r.ReadBytes());
        Assert.Equal(0xAB, r.ReadByte());
        r.EnsureEnd();
    }

    [Theory]
    [InlineData(0UL, 1)]
    [InlineData(127UL, 1)]
    [InlineData(128UL, 2)]
    [InlineData(16383UL, 2)]
    [InlineData(16384UL, 3)]
    [InlineData(0x0000_FFFF_FFFF_F000UL, 7)]
    [InlineData(ulong.MaxValue, 10)]
    public void Varints_are_leb128_sized(ulong v, int bytes) => Assert.Equal(bytes, VarLen(v));

    [Fact]
    public void Reader_rejects_bad_bool_and_oversized_varuint32()
    {
        Assert.Throws<SerializationException>(() => new PtReader([2], "t").ReadBool());
        Assert.Throws<SerializationException>(() => new PtReader([0x80, 0x80, 0x80, 0x80, 0x10], "t").ReadVarUInt32());
    }

    [Fact]
    public void Serializer_is_safe_across_threads()
    {
        var values = Enumerable.Range(0, 64).Select(i => new RunStarted($"r{i}", new string('h', i * 100), i)).ToArray();
        Parallel.For(0, 2000, i =>
        {
            var v = values[i % values.Length];
            Assert.Equal(v, Registry.Deserialize(Registry.Serialize(v), "run-started"));
        });
    }

    private static int VarLen(ulong v)
    {
        var buf = new ArrayBufferWriter<byte>();
        new PtWriter(buf).WriteVarUInt64(v);
        return buf.WrittenCount;
    }

    private static object RoundTrip(object value)
    {
        var bytes = Registry.Serialize(value);
        Assert.Equal(Registry.TryGetByManifest(Registry.ManifestFor(value), out var codec) ? codec.Version : -1, bytes[0]);
        return Registry.Deserialize(bytes, Registry.ManifestFor(value));
    }

    public sealed record Sample(long A, string B);

    public sealed class Other;

    public sealed class SampleCodecs : IPtCodecSet
    {
        public void Register(PtCodecRegistry registry) =>
            registry.Register<Sample>("sample", 1, (w, s) => w.WriteVarInt64(s.A), (ref PtReader r, byte _) => new Sample(r.ReadVarInt64(), ""));
    }
}
