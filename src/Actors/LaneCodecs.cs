using System.Runtime.Serialization;
using PtActors.Engine;
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
/// <item><c>lane.generate</c> v1 = z Window, u T0, u T1, b Quiet, z Budget. <c>lane.generated</c> v1 = z Window, counters
/// (12 fields in declaration order, z each but BytesMapped u, LockWaitHistogram as n × z).</item>
/// <item><c>lane.resend</c> / <c>lane.resent</c> v1 = z Window, ref Domain.</item>
/// <item><c>lane.commit</c> v1 = z Window, b Final. <c>lane.recommit</c> v1 = z Window, z SequenceNrBefore, b Final.
/// <c>lane.committed</c> v1 = z Window, s Domain, z Ops, z Events, z SequenceNr.</item>
/// <item><c>lane.process</c> v1 = z Window, u EndNs. <c>lane.processed</c> v1 = z Window, s Unit, z Dmas, u EndNs,
/// z Invalidations, z Hits, z Misses, z TablePages. <c>lane.drain</c> v1 = u AtNs. <c>lane.drained</c> v1 = s Unit.</item>
/// <item><c>lane.bound</c> / <c>lane.restarted</c> v1 = s Unit, s Domain.</item>
/// <item><c>lane.ready</c> v1 = z Lane, ref Unit, n × ref Domains, n × ref Hosts (as many as domains).
/// <c>lane.failed</c> v1 = z Lane, s Actor, b HasError, [s Error].</item>
/// <item><c>lane.unit-stats</c> v1 = the 16 counters of <see cref="IommuUnitStats"/> in declaration order (z each), then
/// its four first-finding texts (b present, [s text] each).</item>
/// <item><c>lane.image</c> v1 = s Name, z TablePages, n × byte Canonical, n × byte Memory (<see cref="DomainImage"/>).</item>
/// </list>
/// </summary>
public sealed class LaneCodecs : IPtCodecSet
{
    public void Register(PtCodecRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        registry.Register<DeviceHost.Generate>("lane.generate", 1,
            static (w, m) => { w.WriteVarInt64(m.Window); w.WriteVarUInt64(m.T0); w.WriteVarUInt64(m.T1); w.WriteBool(m.Quiet); w.WriteVarInt64(m.Budget); },
            static (ref PtReader r, byte _) => new DeviceHost.Generate(r.ReadVarInt64(), r.ReadVarUInt64(), r.ReadVarUInt64(), r.ReadBool(), r.ReadVarInt64()));
        registry.Register<DeviceHost.Generated>("lane.generated", 1,
            static (w, m) => { w.WriteVarInt64(m.Window); WriteCounters(w, m.Counters); },
            static (ref PtReader r, byte _) => new DeviceHost.Generated(r.ReadVarInt64(), ReadCounters(ref r)));
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
        registry.Register<IotlbActor.Processed>("lane.processed", 1,
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
            },
            static (ref PtReader r, byte _) => new IotlbActor.Processed(r.ReadVarInt64(), r.ReadString(), r.ReadVarInt64(), r.ReadVarUInt64(),
                r.ReadVarInt64(), r.ReadVarInt64(), r.ReadVarInt64(), r.ReadVarInt64()));
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
        registry.Register<DomainImage>("lane.image", 1,
            static (w, m) => { w.WriteString(m.Name); w.WriteVarInt64(m.TablePages); w.WriteBytes(m.Canonical); w.WriteBytes(m.Memory); },
            static (ref PtReader r, byte _) => new DomainImage(r.ReadString(), Int(ref r), r.ReadBytes(), r.ReadBytes()));
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
    }

    private static DeviceHost.HostCounters ReadCounters(ref PtReader r)
    {
        long maps = r.ReadVarInt64(), unmaps = r.ReadVarInt64(), others = r.ReadVarInt64();
        ulong bytes = r.ReadVarUInt64();
        long errors = r.ReadVarInt64(), dmas = r.ReadVarInt64(), submitted = r.ReadVarInt64(), inflight = r.ReadVarInt64();
        var histogram = new long[r.ReadCount(1)];
        for (int i = 0; i < histogram.Length; i++)
            histogram[i] = r.ReadVarInt64();
        return new DeviceHost.HostCounters(maps, unmaps, others, bytes, errors, dmas, submitted, inflight, histogram,
            r.ReadVarInt64(), r.ReadVarInt64(), r.ReadVarInt64());
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
