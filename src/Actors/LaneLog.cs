using Akka.Actor;

namespace PtActors.Actors;

/// <summary>What the coordinator asked of a lane's actors (<see cref="LaneCall"/>).</summary>
public enum LaneCallKind : byte
{
    /// <summary>A host generates a window (<see cref="DeviceHost.Generate"/>).</summary>
    Generate = 1,

    /// <summary>Every domain of the lane commits a window (<see cref="DomainActor.Commit"/>).</summary>
    Commit = 2,

    /// <summary>The unit processes a window (<see cref="IotlbActor.Process"/>).</summary>
    Process = 3,

    /// <summary>The unit drains (<see cref="IotlbActor.Drain"/>).</summary>
    Drain = 4,
}

/// <summary>
/// One request of the window protocol to a lane, as the coordinator sent it: the lane's whole history is a list of
/// them (<see cref="LaneLog"/>), from which a lane lost with its node is rebuilt on another one.
/// <c>Slot</c>: the host (Generate); −1 otherwise. <c>Flag</c>: Quiet (Generate) or Final (Commit).
/// <c>T0</c>/<c>T1</c>: the window's span (Generate), its end (Process, in T1) or the drain's time (Drain, in T1).
/// <c>Held</c>: the back-pressure on each CPU (Generate; <see cref="DeviceHost.Generate.Held"/>).
/// </summary>
public readonly record struct LaneCall(LaneCallKind Kind, long Window, int Slot = -1, long Budget = -1, bool Flag = false, ulong T0 = 0, ulong T1 = 0,
    long[]? Held = null)
{
    /// <summary>How many answers the call gets from a lane with <paramref name="domains"/> domains.</summary>
    public int Answers(int domains) => Kind == LaneCallKind.Commit ? domains : 1;

    /// <summary>Sends the call to the lane's actors (<paramref name="unit"/>, <paramref name="domains"/>, <paramref name="hosts"/>) as <paramref name="sender"/>.</summary>
    public void Send(IActorRef unit, IReadOnlyList<IActorRef> domains, IReadOnlyList<IActorRef> hosts, IActorRef sender)
    {
        switch (Kind)
        {
            case LaneCallKind.Generate:
                hosts[Slot].Tell(new DeviceHost.Generate(Window, T0, T1, Flag, Budget, Held), sender);
                break;
            case LaneCallKind.Commit:
                var commit = new DomainActor.Commit(Window, Flag);
                foreach (var d in domains)
                    d.Tell(commit, sender);
                break;
            case LaneCallKind.Process:
                unit.Tell(new IotlbActor.Process(Window, T1), sender);
                break;
            case LaneCallKind.Drain:
                unit.Tell(new IotlbActor.Drain(T1), sender);
                break;
            default:
                throw new InvalidOperationException($"unknown lane call {Kind}");
        }
    }
}

/// <summary>
/// An answer the coordinator was still waiting for when a lane was lost: to call <c>Call</c> of the lane's
/// <see cref="CatchUp.Calls"/>, from host or domain <c>Slot</c> (Generate, Commit) or the unit (−1).
/// </summary>
public readonly record struct LaneAnswer(int Call, int Slot);

/// <summary>
/// How a lane lost with its node is rebuilt elsewhere: every call the coordinator had sent it, in order, and the
/// answers among them the coordinator never received. The new lane re-executes the calls on fresh actors — its
/// domains check each event they would write against the one their journal already holds and write only past its
/// end — and hands the coordinator just the missing answers, so the run goes on as if nothing had happened.
/// </summary>
public sealed record CatchUp(IReadOnlyList<LaneCall> Calls, IReadOnlyList<LaneAnswer> Outstanding);

/// <summary>
/// The coordinator's record of one lane: every call sent to it (<see cref="Calls"/>) and the answers still
/// awaited, so that a lost lane can be rebuilt (<see cref="CatchUpAt"/>). A lane has at most one call of each
/// kind outstanding per host or domain (the schedule waits for answers before asking again), so an answer is
/// matched by its kind and slot.
/// </summary>
internal sealed class LaneLog
{
    private readonly List<LaneCall> _calls = new();
    private readonly Dictionary<(LaneCallKind Kind, int Slot), int> _pending = new();
    private readonly bool _keep;

    /// <param name="keep">False: keep nothing (a lane that cannot be lost: <see cref="Add"/> and <see cref="Answered"/> do nothing).</param>
    public LaneLog(bool keep = true) => _keep = keep;

    /// <summary>Every call, in the order sent.</summary>
    public IReadOnlyList<LaneCall> Calls => _calls;

    /// <summary>Records <paramref name="call"/> to a lane of <paramref name="domains"/> domains; returns its index (−1 when nothing is kept).</summary>
    public int Add(LaneCall call, int domains)
    {
        if (!_keep)
            return -1;
        int index = _calls.Count;
        _calls.Add(call);
        if (call.Kind == LaneCallKind.Commit)
        {
            for (int slot = 0; slot < domains; slot++)
                _pending[(LaneCallKind.Commit, slot)] = index;
        }
        else
        {
            _pending[(call.Kind, call.Kind == LaneCallKind.Generate ? call.Slot : -1)] = index;
        }
        return index;
    }

    /// <summary>The answer of <paramref name="kind"/> from <paramref name="slot"/> (−1: the unit) arrived.</summary>
    public void Answered(LaneCallKind kind, int slot)
    {
        if (_keep)
            _pending.Remove((kind, slot));
    }

    /// <summary>How to rebuild the lane from its first <paramref name="calls"/> calls (those sent before it was lost).</summary>
    public CatchUp CatchUpAt(int calls)
    {
        var outstanding = new List<LaneAnswer>(_pending.Count);
        foreach (var ((_, slot), call) in _pending)
        {
            if (call < calls)
                outstanding.Add(new LaneAnswer(call, slot));
        }
        outstanding.Sort(static (a, b) => a.Call != b.Call ? a.Call.CompareTo(b.Call) : a.Slot.CompareTo(b.Slot));
        return new CatchUp(_calls.GetRange(0, calls), outstanding);
    }
}
