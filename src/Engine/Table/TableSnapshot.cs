namespace PtActors.Engine;

/// <summary>
/// Everything <see cref="TableMemory"/> holds that later behaviour depends on: which pages exist, which are
/// allocated (so the lowest-free-first allocator continues identically), and the contents of the allocated ones.
/// </summary>
public sealed record TableMemorySnapshot(ulong Base, int PageCount, int PageLimit, ulong[] AllocatedBits, ulong[][] AllocatedPages);

/// <summary>A domain's own state beside its memory: enough to rebuild it byte for byte.</summary>
public sealed record DomainSnapshot(PtConfig Config, int TopLevel, int TopPage, ulong PgsizeBitmap, int TablePages);
