using System.Runtime.Serialization;
using PtActors.Engine;
using PtActors.Engine.Cost;
using PtActors.Engine.Hardware;
using PtActors.Persistence.Serialization;

namespace PtActors.Actors;

/// <summary>
/// Marks a message of the window protocol between the coordinator and its lanes: what a cluster carries between
/// nodes. config/lanes.conf binds it to the ptb serializer and <see cref="LaneCodecs"/> writes each one. Messages
/// within a lane (operations, results, DMAs, releases, the domains' tables) never leave their node and are marked
/// <see cref="Akka.Actor.INoSerializationVerificationNeeded"/> instead.
/// </summary>
public interface ILaneMessage;

/// <summary>
/// Codecs of the lane protocol (<see cref="ILaneMessage"/>): compact binary, a manifest per message (<c>lane.*</c>),
/// a version byte first. Notation as in the domain codecs: <c>u</c> = unsigned varint, <c>z</c> = zigzag varint,
/// <c>s</c> = string, <c>b</c> = bool, <c>ref</c> = an actor reference (its path, with the node's address when
/// the message leaves its node), <c>n × X</c> = a count then n X.
/// <list type="bullet">
/// <item><c>lane.generate</c> v2 = z Window, u T0, u T1, b Quiet, z Budget, held (b present, [n × z ns]; v1 had none).
/// <c>lane.generated</c> v2 = z Window, counters (12 fields in declaration order, z each but BytesMapped u,
/// LockWaitHistogram as n × z; then b present, [n × f64 CpuNs], which v1 had not).</item>
/// <item><c>lane.resend</c> / <c>lane.resent</c> v1 = z Window, ref Domain.</item>
/// <item><c>lane.commit</c> v1 = z Window, b Final. <c>lane.recommit</c> v1 = z Window, z SequenceNrBefore, b Final.
/// <c>lane.committed</c> v1 = z Window, s Domain, z Ops, z Events, z SequenceNr.</item>
/// <item><c>lane.process</c> v1 = z Window, u EndNs. <c>lane.processed</c> v1 = z Window, s Unit, z Dmas, u EndNs,
/// z Invalidations, z Hits, z Misses, z TablePages; v2 adds b present, [n × f64 CpuNs], f64 TimerCpuNs, f64
/// TranslationBehindNs. <c>lane.drain</c> v1 = u AtNs. <c>lane.drained</c> v1 = s Unit.</item>
/// <item><c>lane.bound</c> / <c>lane.restarted</c> v1 = s Unit, s Domain.</item>
/// <item><c>lane.start</c> v1 = settings (every field of <see cref="SimulationSettings"/> in declaration order; an
/// optional one as b present, [value]; the policy and unsafe mode by name, the format as a byte, the cost model as in a
/// ledger), z Lane, ref Coordinator; v2 adds b HasCatchUp, [n × call (byte Kind, z Window, z Slot, z Budget, b Flag,
/// u T0, u T1; v3 adds held as in lane.generate), n × outstanding answer (z Call, z Slot)] (a lane rebuilt after its
/// node was lost, <see cref="CatchUp"/>).
/// <c>lane.catching-up</c> v1 = z Lane.</item>
/// <item><c>lane.ready</c> v1 = z Lane, ref Unit, n × ref Domains, n × ref Hosts (as many as domains).
/// <c>lane.failed</c> v1 = z Lane, s Actor, b HasError, [s Error].</item>
/// <item><c>lane.unit-stats</c> v1 = the 16 counters of <see cref="IommuUnitStats"/> in declaration order (z each), then
/// its four first-finding texts (b present, [s text] each).</item>
/// <item><c>lane.image</c> v1 = s Name, z TablePages, n × byte Canonical, n × byte Memory (<see cref="DomainImage"/>).</item>
/// <item><c>lane.get-counters</c>, <c>lane.get-costs</c> v1 = nothing. <c>lane.counters</c> v2 = s Unit, unit-stats,
/// b HasCosts, [unit ledger] (v1 had n × image after unit-stats). <c>lane.image-part</c> v1 = s Domain, z TablePages,
/// z CanonicalLength, z MemoryLength, z Offset, n × byte (<see cref="IotlbActor.ImagePart"/>). <c>lane.costs</c> v2 = n × host ledger (v2 adds z Throttled, f64 HeldBytes at its end). A ledger is its cost model (its 13 times
/// as f64, then z IovaMagazineSize, z IovaCacheMaxOrder, z TranslationsInFlight) and everything it holds
/// (<see cref="UnitCostLedger.State"/>, <see cref="HostCostLedger.State"/>, f64 for times, histograms as z Count,
/// f64 SumNs, n × z bucket); restored only when it is consistent with its model.</item>
/// </list>
/// </summary>
public sealed class LaneCodecs : IPtCodecSet
{
    public void Register(PtCodecRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        registry.Register<DeviceHost.Generate>("lane.generate", 2,
            static (w, m) =>
            {
                w.WriteVarInt64(m.Window);
                w.WriteVarUInt64(m.T0);
                w.WriteVarUInt64(m.T1);
                w.WriteBool(m.Quiet);
                w.WriteVarInt64(m.Budget);
                WriteHeld(w, m.Held);
            },
            static (ref PtReader r, byte v) => new DeviceHost.Generate(r.ReadVarInt64(), r.ReadVarUInt64(), r.ReadVarUInt64(), r.ReadBool(), r.ReadVarInt64(),
                v >= 2 ? ReadHeld(ref r) : null));
        registry.Register<DeviceHost.Generated>("lane.generated", 2,
            static (w, m) => { w.WriteVarInt64(m.Window); WriteCounters(w, m.Counters); },
            static (ref PtReader r, byte v) => new DeviceHost.Generated(r.ReadVarInt64(), ReadCounters(ref r, v)));
        registry.Register<DeviceHost.Resend>("lane.resend", 1,
            static (w, m) => { w.WriteVarInt64(m.Window); w.WriteActorRef(m.Domain); },
            static (ref PtReader r, byte _) => new DeviceHost.Resend(r.ReadVarInt64(), r.ReadActorRef()));
        registry.Register<DeviceHost.Resent>("lane.resent", 1,
            static (w, m) => { w.WriteVarInt64(m.Window); w.WriteActorRef(m.Domain); },
            static (ref PtReader r, byte _) => new DeviceHost.Resent(r.ReadVarInt64(), r.ReadActorRef()));
        registry.Register<DomainActor.Commit>("lane.commit", 1,
            static (w, m) => { w.WriteVarInt64(m.Window); w.WriteBool(m.Final); },
            static (ref PtReader r, byte _) => new DomainActor.Commit(r.ReadVarInt64(), r.ReadBool()));
        registry.Register<DomainActor.Recommit>("lane.recommit", 1,
            static (w, m) => { w.WriteVarInt64(m.Window); w.WriteVarInt64(m.SequenceNrBefore); w.WriteBool(m.Final); },
            static (ref PtReader r, byte _) => new DomainActor.Recommit(r.ReadVarInt64(), r.ReadVarInt64(), r.ReadBool()));
        registry.Register<DomainActor.Committed>("lane.committed", 1,
            static (w, m) =>
            {
                w.WriteVarInt64(m.Window);
                w.WriteString(m.Domain);
                w.WriteVarInt64(m.Ops);
                w.WriteVarInt64(m.Events);
                w.WriteVarInt64(m.SequenceNr);
            },
            static (ref PtReader r, byte _) => new DomainActor.Committed(r.ReadVarInt64(), r.ReadString(), Int(ref r), Int(ref r), r.ReadVarInt64()));
        registry.Register<IotlbActor.Process>("lane.process", 1,
            static (w, m) => { w.WriteVarInt64(m.Window); w.WriteVarUInt64(m.EndNs); },
            static (ref PtReader r, byte _) => new IotlbActor.Process(r.ReadVarInt64(), r.ReadVarUInt64()));
        registry.Register<IotlbActor.Processed>("lane.processed", 2,
            static (w, m) =>
            {
                w.WriteVarInt64(m.Window);
                w.WriteString(m.Unit);
                w.WriteVarInt64(m.Dmas);
                w.WriteVarUInt64(m.EndNs);
                w.WriteVarInt64(m.Invalidations);
                w.WriteVarInt64(m.Hits);
                w.WriteVarInt64(m.Misses);
                w.WriteVarInt64(m.TablePages);
                WriteOptionalF64s(w, m.CpuNs);
                WriteF64(w, m.TimerCpuNs);
                WriteF64(w, m.TranslationBehindNs);
            },
            static (ref PtReader r, byte v) =>
            {
                long window = r.ReadVarInt64();
                string unit = r.ReadString();
                long dmas = r.ReadVarInt64();
                ulong end = r.ReadVarUInt64();
                long inv = r.ReadVarInt64(), hits = r.ReadVarInt64(), misses = r.ReadVarInt64(), pages = r.ReadVarInt64();
                if (v < 2)
                    return new IotlbActor.Processed(window, unit, dmas, end, inv, hits, misses, pages);
                return new IotlbActor.Processed(window, unit, dmas, end, inv, hits, misses, pages, ReadOptionalF64s(ref r), ReadF64(ref r), ReadF64(ref r));
            });
        registry.Register<IotlbActor.Drain>("lane.drain", 1,
            static (w, m) => w.WriteVarUInt64(m.AtNs),
            static (ref PtReader r, byte _) => new IotlbActor.Drain(r.ReadVarUInt64()));
        registry.Register<IotlbActor.Drained>("lane.drained", 1,
            static (w, m) => w.WriteString(m.Unit),
            static (ref PtReader r, byte _) => new IotlbActor.Drained(r.ReadString()));
        registry.Register<IotlbActor.Bound>("lane.bound", 1,
            static (w, m) => { w.WriteString(m.Unit); w.WriteString(m.Domain); },
            static (ref PtReader r, byte _) => new IotlbActor.Bound(r.ReadString(), r.ReadString()));
        registry.Register<IotlbActor.DomainRestarted>("lane.restarted", 1,
            static (w, m) => { w.WriteString(m.Unit); w.WriteString(m.Domain); },
            static (ref PtReader r, byte _) => new IotlbActor.DomainRestarted(r.ReadString(), r.ReadString()));
        registry.Register<LaneActor.Start>("lane.start", 3,
            static (w, m) =>
            {
                WriteSettings(w, m.Settings);
                w.WriteVarInt64(m.Lane);
                w.WriteActorRef(m.Coordinator);
                w.WriteBool(m.CatchUp is not null);
                if (m.CatchUp is not null)
                    WriteCatchUp(w, m.CatchUp);
            },
            static (ref PtReader r, byte v) =>
            {
                var settings = ReadSettings(ref r);
                int lane = Int(ref r);
                var coordinator = r.ReadActorRef();
                return new LaneActor.Start(settings, lane, coordinator, v >= 2 && r.ReadBool() ? ReadCatchUp(ref r, v) : null);
            });
        registry.Register<LaneActor.CatchingUp>("lane.catching-up", 1,
            static (w, m) => w.WriteVarInt64(m.Lane),
            static (ref PtReader r, byte _) => new LaneActor.CatchingUp(Int(ref r)));
        registry.Register<LaneActor.Ready>("lane.ready", 1, WriteReady, ReadReady);
        registry.Register<LaneActor.Failed>("lane.failed", 1,
            static (w, m) =>
            {
                w.WriteVarInt64(m.Lane);
                w.WriteString(m.Actor);
                w.WriteBool(m.Error is not null);
                if (m.Error is not null)
                    w.WriteString(m.Error);
            },
            static (ref PtReader r, byte _) => new LaneActor.Failed(Int(ref r), r.ReadString(), r.ReadBool() ? r.ReadString() : null));
        registry.Register<IommuUnitStats>("lane.unit-stats", 1, WriteStats, ReadStats);
        registry.Register<IotlbActor.GetCounters>("lane.get-counters", 1, static (_, _) => { }, static (ref PtReader _, byte _) => new IotlbActor.GetCounters());
        registry.Register<IotlbActor.Counters>("lane.counters", 2,
            static (w, m) =>
            {
                w.WriteString(m.Unit);
                WriteStats(w, m.Stats);
                w.WriteBool(m.Costs is not null);
                if (m.Costs is not null)
                    WriteUnitLedger(w, m.Costs);
            },
            static (ref PtReader r, byte v) =>
            {
                string unit = r.ReadString();
                var stats = ReadStats(ref r, 1);
                if (v == 1)
                {
                    // Version 1 carried the images itself (now sent before it, in pieces): read past them.
                    for (int i = r.ReadCount(3); i > 0; i--)
                        ReadImage(ref r);
                }
                return new IotlbActor.Counters(unit, stats, r.ReadBool() ? ReadUnitLedger(ref r) : null);
            });
        registry.Register<IotlbActor.ImagePart>("lane.image-part", 1,
            static (w, m) =>
            {
                w.WriteString(m.Domain);
                w.WriteVarInt64(m.TablePages);
                w.WriteVarInt64(m.CanonicalLength);
                w.WriteVarInt64(m.MemoryLength);
                w.WriteVarInt64(m.Offset);
                w.WriteBytes(m.Bytes);
            },
            static (ref PtReader r, byte _) => new IotlbActor.ImagePart(r.ReadString(), Int(ref r), Int(ref r), Int(ref r), Int(ref r), r.ReadBytes()));
        registry.Register<DeviceHost.GetCosts>("lane.get-costs", 1, static (_, _) => { }, static (ref PtReader _, byte _) => DeviceHost.GetCosts.Instance);
        registry.Register<DeviceHost.Costs>("lane.costs", 2,
            static (w, m) =>
            {
                w.WriteCount(m.Ledgers.Count);
                foreach (var ledger in m.Ledgers)
                    WriteHostLedger(w, ledger);
            },
            static (ref PtReader r, byte v) =>
            {
                var ledgers = new HostCostLedger[r.ReadCount(1)];
                for (int i = 0; i < ledgers.Length; i++)
                    ledgers[i] = ReadHostLedger(ref r, v);
                return new DeviceHost.Costs(ledgers);
            });
        registry.Register<DomainImage>("lane.image", 1, WriteImage, static (ref PtReader r, byte _) => ReadImage(ref r));
    }

    private static void WriteF64(PtWriter w, double v) => w.WriteUInt64(BitConverter.DoubleToUInt64Bits(v));

    private static double ReadF64(ref PtReader r) => BitConverter.UInt64BitsToDouble(r.ReadUInt64());

    private static void WriteOptionalF64s(PtWriter w, double[]? values)
    {
        w.WriteBool(values is not null);
        if (values is not null)
            WriteF64s(w, values);
    }

    private static double[]? ReadOptionalF64s(ref PtReader r) => r.ReadBool() ? ReadF64s(ref r) : null;

    /// <summary>The hold of each CPU (<see cref="DeviceHost.Generate.Held"/>): b present, z count, count × z ns.</summary>
    private static void WriteHeld(PtWriter w, long[]? held)
    {
        w.WriteBool(held is not null);
        if (held is null)
            return;
        w.WriteCount(held.Length);
        foreach (long ns in held)
            w.WriteVarInt64(ns);
    }

    private static long[]? ReadHeld(ref PtReader r)
    {
        if (!r.ReadBool())
            return null;
        var held = new long[r.ReadCount(1)];
        for (int i = 0; i < held.Length; i++)
            held[i] = r.ReadVarInt64();
        return held;
    }

    private static void WriteF64s(PtWriter w, double[] values)
    {
        w.WriteCount(values.Length);
        foreach (double v in values)
            WriteF64(w, v);
    }

    private static double[] ReadF64s(ref PtReader r)
    {
        var values = new double[r.ReadCount(8)];
        for (int i = 0; i < values.Length; i++)
            values[i] = ReadF64(ref r);
        return values;
    }

    private static void WriteInts(PtWriter w, int[] values)
    {
        w.WriteCount(values.Length);
        foreach (int v in values)
            w.WriteVarInt64(v);
    }

    private static int[] ReadInts(ref PtReader r)
    {
        var values = new int[r.ReadCount(1)];
        for (int i = 0; i < values.Length; i++)
            values[i] = Int(ref r);
        return values;
    }

    /// <summary>A cost model: its times (f64) and counts (z), in declaration order.</summary>
    private static void WriteModel(PtWriter w, CostModel m)
    {
        foreach (double v in (ReadOnlySpan<double>)[m.MapCallNs, m.MapPageNs, m.UnmapCallNs, m.UnmapPageNs, m.DmaCallNs, m.IovaCacheHitNs,
            m.IovaCacheMissNs, m.IovaFreeNs, m.FlushQueueNs, m.InvalidationSubmitNs, m.InvalidationNs, m.WalkReadNs, m.IotlbHitNs])
            WriteF64(w, v);
        w.WriteVarInt64(m.IovaMagazineSize);
        w.WriteVarInt64(m.IovaCacheMaxOrder);
        w.WriteVarInt64(m.TranslationsInFlight);
    }

    private static CostModel ReadModel(ref PtReader r)
    {
        var m = new CostModel
        {
            MapCallNs = ReadF64(ref r),
            MapPageNs = ReadF64(ref r),
            UnmapCallNs = ReadF64(ref r),
            UnmapPageNs = ReadF64(ref r),
            DmaCallNs = ReadF64(ref r),
            IovaCacheHitNs = ReadF64(ref r),
            IovaCacheMissNs = ReadF64(ref r),
            IovaFreeNs = ReadF64(ref r),
            FlushQueueNs = ReadF64(ref r),
            InvalidationSubmitNs = ReadF64(ref r),
            InvalidationNs = ReadF64(ref r),
            WalkReadNs = ReadF64(ref r),
            IotlbHitNs = ReadF64(ref r),
            IovaMagazineSize = Int(ref r),
            IovaCacheMaxOrder = Int(ref r),
            TranslationsInFlight = Int(ref r),
        };
        if (m.Problem() is { } problem)
            throw r.Corrupt($"cost model: {problem}");
        return m;
    }

    private static void WriteHistogram(PtWriter w, LatencyHistogram h)
    {
        w.WriteVarInt64(h.Count);
        WriteF64(w, h.SumNs);
        w.WriteCount(h.BucketCounts.Length);
        foreach (long n in h.BucketCounts)
            w.WriteVarInt64(n);
    }

    private static LatencyHistogram ReadHistogram(ref PtReader r)
    {
        long count = r.ReadVarInt64();
        double sum = ReadF64(ref r);
        var counts = new long[r.ReadCount(1)];
        for (int i = 0; i < counts.Length; i++)
            counts[i] = r.ReadVarInt64();
        return LatencyHistogram.Restore(counts, count, sum, out string? problem) ?? throw r.Corrupt($"latency histogram: {problem}");
    }

    private static void WriteUnitLedger(PtWriter w, UnitCostLedger ledger)
    {
        WriteModel(w, ledger.Model);
        var s = ledger.Capture();
        WriteF64s(w, s.Slots);
        WriteF64(w, s.QueueFreeNs);
        w.WriteCount(s.Waited.Length);
        foreach (bool b in s.Waited)
            w.WriteBool(b);
        w.WriteVarInt64(s.WaitingCpus);
        foreach (double v in (ReadOnlySpan<double>)[s.LastCompletionNs, s.QueueBusyNs, s.SyncQueueBusyNs])
            WriteF64(w, v);
        w.WriteVarInt64(s.Translations);
        WriteF64(w, s.StallNs);
        WriteF64(w, s.LastTranslationNs);
        WriteF64s(w, s.CpuNs);
        WriteF64(w, s.TimerCpuNs);
        WriteHistogram(w, s.UnmapLatency);
        WriteHistogram(w, s.StaleWindow);
    }

    private static UnitCostLedger ReadUnitLedger(ref PtReader r)
    {
        var model = ReadModel(ref r);
        var slots = ReadF64s(ref r);
        double queueFree = ReadF64(ref r);
        var waited = new bool[r.ReadCount(1)];
        for (int i = 0; i < waited.Length; i++)
            waited[i] = r.ReadBool();
        int waiting = Int(ref r);
        double lastCompletion = ReadF64(ref r), queueBusy = ReadF64(ref r), syncBusy = ReadF64(ref r);
        long translations = r.ReadVarInt64();
        double stall = ReadF64(ref r), lastTranslation = ReadF64(ref r);
        var cpuNs = ReadF64s(ref r);
        double timer = ReadF64(ref r);
        var unmapLatency = ReadHistogram(ref r);
        var stale = ReadHistogram(ref r);
        var state = new UnitCostLedger.State(slots, queueFree, waited, waiting, lastCompletion, queueBusy, syncBusy, translations, stall,
            lastTranslation, cpuNs, timer, unmapLatency, stale);
        return UnitCostLedger.Restore(model, state, out string? problem) ?? throw r.Corrupt($"unit cost ledger: {problem}");
    }

    private static void WriteHostLedger(PtWriter w, HostCostLedger ledger)
    {
        WriteModel(w, ledger.Model);
        var s = ledger.Capture();
        w.WriteVarInt64(s.Orders);
        WriteInts(w, s.Cached);
        WriteInts(w, s.Depot);
        WriteF64s(w, s.CpuNs);
        WriteF64s(w, s.BytesByCpu);
        w.WriteVarInt64(s.Transfers);
        WriteHistogram(w, s.MapLatency);
        w.WriteVarInt64(s.IovaAllocs);
        w.WriteVarInt64(s.IovaCacheMisses);
        w.WriteVarInt64(s.Throttled);
        WriteF64(w, s.HeldBytes);
    }

    private static HostCostLedger ReadHostLedger(ref PtReader r, byte version)
    {
        var model = ReadModel(ref r);
        int orders = Int(ref r);
        var cached = ReadInts(ref r);
        var depot = ReadInts(ref r);
        var cpuNs = ReadF64s(ref r);
        var bytes = ReadF64s(ref r);
        long transfers = r.ReadVarInt64();
        var latency = ReadHistogram(ref r);
        long allocs = r.ReadVarInt64(), misses = r.ReadVarInt64();
        long throttled = version >= 2 ? r.ReadVarInt64() : 0;
        double heldBytes = version >= 2 ? ReadF64(ref r) : 0;
        var state = new HostCostLedger.State(orders, cached, depot, cpuNs, bytes, transfers, latency, allocs, misses, throttled, heldBytes);
        return HostCostLedger.Restore(model, state, out string? problem) ?? throw r.Corrupt($"host cost ledger: {problem}");
    }

    private static int Int(ref PtReader r)
    {
        long v = r.ReadVarInt64();
        if (v is < int.MinValue or > int.MaxValue)
            throw r.Corrupt($"value {v} does not fit 32 bits");
        return (int)v;
    }

    private static void WriteCounters(PtWriter w, DeviceHost.HostCounters c)
    {
        w.WriteVarInt64(c.Maps);
        w.WriteVarInt64(c.Unmaps);
        w.WriteVarInt64(c.Others);
        w.WriteVarUInt64(c.BytesMapped);
        w.WriteVarInt64(c.Errors);
        w.WriteVarInt64(c.Dmas);
        w.WriteVarInt64(c.Submitted);
        w.WriteVarInt64(c.Inflight);
        w.WriteCount(c.LockWaitHistogram.Length);
        foreach (long n in c.LockWaitHistogram)
            w.WriteVarInt64(n);
        w.WriteVarInt64(c.Issued);
        w.WriteVarInt64(c.Cancelled);
        w.WriteVarInt64(c.LockWaits);
        WriteOptionalF64s(w, c.CpuNs);
    }

    private static DeviceHost.HostCounters ReadCounters(ref PtReader r, byte version)
    {
        long maps = r.ReadVarInt64(), unmaps = r.ReadVarInt64(), others = r.ReadVarInt64();
        ulong bytes = r.ReadVarUInt64();
        long errors = r.ReadVarInt64(), dmas = r.ReadVarInt64(), submitted = r.ReadVarInt64(), inflight = r.ReadVarInt64();
        var histogram = new long[r.ReadCount(1)];
        for (int i = 0; i < histogram.Length; i++)
            histogram[i] = r.ReadVarInt64();
        long issued = r.ReadVarInt64(), cancelled = r.ReadVarInt64(), lockWaits = r.ReadVarInt64();
        return new DeviceHost.HostCounters(maps, unmaps, others, bytes, errors, dmas, submitted, inflight, histogram, issued, cancelled, lockWaits,
            version >= 2 ? ReadOptionalF64s(ref r) : null);
    }

    private static void WriteSettings(PtWriter w, SimulationSettings s)
    {
        w.WriteVarInt64(s.Iommus);
        w.WriteVarInt64(s.Domains);
        w.WriteVarInt64(s.Devices);
        w.WriteString(s.Workload);
        w.WriteByte((byte)s.Format);
        w.WriteString(s.Policy.ToString());
        w.WriteVarInt64(s.IotlbEntries);
        w.WriteVarInt64(s.Cpus);
        w.WriteVarInt64(s.Inflight);
        WriteOptional(w, s.LateDma, WriteF64);
        WriteOptional(w, s.Ops, static (w, v) => w.WriteVarInt64(v));
        WriteOptional(w, s.DurationNs, static (w, v) => w.WriteVarUInt64(v));
        w.WriteVarUInt64(s.Seed);
        w.WriteVarUInt64(s.WindowNs);
        w.WriteVarInt64(s.MaxOpsPerEvent);
        WriteOptional(w, s.AckLogPath, static (w, v) => w.WriteString(v));
        w.WriteVarInt64(s.SnapshotEvery);
        w.WriteString(s.RunId);
        w.WriteString(UnsafeModes.Name(s.Unsafe));
        w.WriteBool(s.RecordDmas);
        WriteModel(w, s.Cost);
        w.WriteBool(s.NicPagePool);
        w.WriteVarUInt64(s.BufferPageBytes);
        WriteOptional(w, s.LinkGbps, WriteF64);
        WriteOptional(w, s.NicRing, static (w, v) => w.WriteVarInt64(v));
        WriteOptional(w, s.NicQueues, static (w, v) => w.WriteVarInt64(v));
        WriteOptional(w, s.FrameBytes, static (w, v) => w.WriteVarInt64(v));
        WriteOptional(w, s.NvmeIoBytes, static (w, v) => w.WriteVarUInt64(v));
        WriteOptional(w, s.NvmeQueueDepth, static (w, v) => w.WriteVarInt64(v));
        WriteOptional(w, s.NvmeIops, static (w, v) => w.WriteVarInt64(v));
        WriteOptional(w, s.ClusterSeed, static (w, v) => w.WriteString(v));
    }

    private static SimulationSettings ReadSettings(ref PtReader r)
    {
        int iommus = Int(ref r), domains = Int(ref r), devices = Int(ref r);
        string workload = r.ReadString();
        byte format = r.ReadByte();
        if (!Enum.IsDefined((PtFormatKind)format))
            throw r.Corrupt($"unknown page-table format {format}");
        string policyText = r.ReadString();
        if (!FlushPolicySpec.TryParse(policyText, out var policy))
            throw r.Corrupt($"unknown flush policy '{policyText}'");
        int iotlb = Int(ref r), cpus = Int(ref r), inflight = Int(ref r);
        double? lateDma = r.ReadBool() ? ReadF64(ref r) : null;
        long? ops = r.ReadBool() ? r.ReadVarInt64() : null;
        ulong? duration = r.ReadBool() ? r.ReadVarUInt64() : null;
        ulong seed = r.ReadVarUInt64(), window = r.ReadVarUInt64();
        int maxOps = Int(ref r);
        string? ackLog = r.ReadBool() ? r.ReadString() : null;
        int snapshotEvery = Int(ref r);
        string runId = r.ReadString();
        string unsafeName = r.ReadString();
        var unsafeMode = UnsafeModes.Parse(unsafeName) ?? throw r.Corrupt($"unknown unsafe mode '{unsafeName}'");
        bool recordDmas = r.ReadBool();
        var cost = ReadModel(ref r);
        bool pagePool = r.ReadBool();
        ulong bufferPage = r.ReadVarUInt64();
        double? link = r.ReadBool() ? ReadF64(ref r) : null;
        int? ring = r.ReadBool() ? Int(ref r) : null;
        int? queues = r.ReadBool() ? Int(ref r) : null;
        int? frame = r.ReadBool() ? Int(ref r) : null;
        ulong? ioBytes = r.ReadBool() ? r.ReadVarUInt64() : null;
        int? depth = r.ReadBool() ? Int(ref r) : null;
        int? iops = r.ReadBool() ? Int(ref r) : null;
        string? clusterSeed = r.ReadBool() ? r.ReadString() : null;
        return new SimulationSettings
        {
            Iommus = iommus, Domains = domains, Devices = devices, Workload = workload, Format = (PtFormatKind)format, Policy = policy,
            IotlbEntries = iotlb, Cpus = cpus, Inflight = inflight, LateDma = lateDma, Ops = ops, DurationNs = duration, Seed = seed,
            WindowNs = window, MaxOpsPerEvent = maxOps, AckLogPath = ackLog, SnapshotEvery = snapshotEvery, RunId = runId, Unsafe = unsafeMode,
            RecordDmas = recordDmas, Cost = cost, NicPagePool = pagePool, BufferPageBytes = bufferPage, LinkGbps = link, NicRing = ring,
            NicQueues = queues, FrameBytes = frame, NvmeIoBytes = ioBytes, NvmeQueueDepth = depth, NvmeIops = iops,
            ClusterSeed = clusterSeed,
        };
    }

    private static void WriteOptional<T>(PtWriter w, T? value, Action<PtWriter, T> write) where T : struct
    {
        w.WriteBool(value.HasValue);
        if (value is { } v)
            write(w, v);
    }

    private static void WriteOptional(PtWriter w, string? value, Action<PtWriter, string> write)
    {
        w.WriteBool(value is not null);
        if (value is not null)
            write(w, value);
    }

    private static void WriteCatchUp(PtWriter w, CatchUp c)
    {
        w.WriteCount(c.Calls.Count);
        foreach (var call in c.Calls)
        {
            w.WriteByte((byte)call.Kind);
            w.WriteVarInt64(call.Window);
            w.WriteVarInt64(call.Slot);
            w.WriteVarInt64(call.Budget);
            w.WriteBool(call.Flag);
            w.WriteVarUInt64(call.T0);
            w.WriteVarUInt64(call.T1);
            WriteHeld(w, call.Held);
        }
        w.WriteCount(c.Outstanding.Count);
        foreach (var a in c.Outstanding)
        {
            w.WriteVarInt64(a.Call);
            w.WriteVarInt64(a.Slot);
        }
    }

    private static CatchUp ReadCatchUp(ref PtReader r, byte version)
    {
        var calls = new LaneCall[r.ReadCount(7)];
        for (int i = 0; i < calls.Length; i++)
        {
            byte kind = r.ReadByte();
            if (kind is < (byte)LaneCallKind.Generate or > (byte)LaneCallKind.Drain)
                throw new SerializationException($"lane.start: unknown lane call kind {kind}");
            calls[i] = new LaneCall((LaneCallKind)kind, r.ReadVarInt64(), Int(ref r), r.ReadVarInt64(), r.ReadBool(), r.ReadVarUInt64(), r.ReadVarUInt64(),
                version >= 3 ? ReadHeld(ref r) : null);
        }
        var outstanding = new LaneAnswer[r.ReadCount(2)];
        for (int i = 0; i < outstanding.Length; i++)
            outstanding[i] = new LaneAnswer(Int(ref r), Int(ref r));
        return new CatchUp(calls, outstanding);
    }

    private static void WriteReady(PtWriter w, LaneActor.Ready m)
    {
        if (m.Hosts.Count != m.Domains.Count)
            throw new SerializationException($"lane {m.Lane}: {m.Domains.Count} domains and {m.Hosts.Count} hosts (one host per domain)");
        w.WriteVarInt64(m.Lane);
        w.WriteActorRef(m.Unit);
        w.WriteCount(m.Domains.Count);
        foreach (var d in m.Domains)
            w.WriteActorRef(d);
        foreach (var h in m.Hosts)
            w.WriteActorRef(h);
    }

    private static LaneActor.Ready ReadReady(ref PtReader r, byte version)
    {
        int lane = Int(ref r);
        var unit = r.ReadActorRef();
        int n = r.ReadCount(2);
        var domains = new Akka.Actor.IActorRef[n];
        for (int i = 0; i < n; i++)
            domains[i] = r.ReadActorRef();
        var hosts = new Akka.Actor.IActorRef[n];
        for (int i = 0; i < n; i++)
            hosts[i] = r.ReadActorRef();
        return new LaneActor.Ready(lane, unit, domains, hosts);
    }

    private static void WriteImage(PtWriter w, DomainImage m)
    {
        w.WriteString(m.Name);
        w.WriteVarInt64(m.TablePages);
        w.WriteBytes(m.Canonical);
        w.WriteBytes(m.Memory);
    }

    private static DomainImage ReadImage(ref PtReader r) => new(r.ReadString(), Int(ref r), r.ReadBytes(), r.ReadBytes());

    private static void WriteStats(PtWriter w, IommuUnitStats s)
    {
        foreach (long v in (ReadOnlySpan<long>)[s.Hits, s.Misses, s.Faults, s.Invalidations, s.DomainInvalidations, s.GlobalInvalidations,
            s.InvalidatedBytes, s.OverInvalidatedBytes, s.InvalidationBusyNs, s.Flushes, s.TimedFlushes, s.StaleInWindow, s.StaleViolations,
            s.MaxStaleWindowNs, s.UseAfterFree, s.IsolationBreaches])
            w.WriteVarInt64(v);
        foreach (string? text in (ReadOnlySpan<string?>)[s.FirstStaleInWindow, s.FirstStaleViolation, s.FirstUseAfterFree, s.FirstIsolationBreach])
        {
            w.WriteBool(text is not null);
            if (text is not null)
                w.WriteString(text);
        }
    }

    private static IommuUnitStats ReadStats(ref PtReader r, byte version)
    {
        var s = new IommuUnitStats
        {
            Hits = r.ReadVarInt64(),
            Misses = r.ReadVarInt64(),
            Faults = r.ReadVarInt64(),
            Invalidations = r.ReadVarInt64(),
            DomainInvalidations = r.ReadVarInt64(),
            GlobalInvalidations = r.ReadVarInt64(),
            InvalidatedBytes = r.ReadVarInt64(),
            OverInvalidatedBytes = r.ReadVarInt64(),
            InvalidationBusyNs = r.ReadVarInt64(),
            Flushes = r.ReadVarInt64(),
            TimedFlushes = r.ReadVarInt64(),
            StaleInWindow = r.ReadVarInt64(),
            StaleViolations = r.ReadVarInt64(),
            MaxStaleWindowNs = r.ReadVarInt64(),
            UseAfterFree = r.ReadVarInt64(),
            IsolationBreaches = r.ReadVarInt64(),
        };
        s.FirstStaleInWindow = r.ReadBool() ? r.ReadString() : null;
        s.FirstStaleViolation = r.ReadBool() ? r.ReadString() : null;
        s.FirstUseAfterFree = r.ReadBool() ? r.ReadString() : null;
        s.FirstIsolationBreach = r.ReadBool() ? r.ReadString() : null;
        return s;
    }
}
