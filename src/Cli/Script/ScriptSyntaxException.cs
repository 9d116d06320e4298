namespace PtActors.Cli.Script;

/// <summary>
/// A malformed scenario line. The message is the reason printed after <c>FILE:LINE: </c>; it is a user
/// error, reported without a stack trace.
/// </summary>
internal sealed class ScriptSyntaxException(string reason) : Exception(reason);
