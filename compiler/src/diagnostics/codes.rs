//! Every diagnostic code in one table. Codes are stable: tools match on
//! them, so a code is never reused for another meaning.

use super::Severity;

macro_rules! codes {
    ($($(#[doc = $doc:literal])* $name:ident = $code:literal, $sev:ident;)*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($(#[doc = $doc])* $name,)*
        }

        impl Code {
            /// The code as printed, e.g. `E0201`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$name => $code,)* }
            }

            /// Whether it is an error or a warning.
            pub fn severity(self) -> Severity {
                match self { $(Code::$name => Severity::$sev,)* }
            }

            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code's page of the diagnostics index (Markdown): what it
            /// means, an example that triggers it, how to fix it. Every code
            /// has one, or this does not compile.
            pub fn explanation(self) -> &'static str {
                match self { $(Code::$name => include_str!(concat!("explain/", $code, ".md")),)* }
            }
        }
    };
}

codes! {
    // E01xx: reading the file.
    /// The file could not be read.
    Io = "E0100", Error;
    /// The bytes are not UTF-8.
    InvalidUtf8 = "E0101", Error;
    /// The file is empty.
    EmptyFile = "E0102", Error;
    /// The text is not JSON.
    JsonSyntax = "E0103", Error;
    /// The same key twice in one object.
    DuplicateKey = "E0104", Error;
    /// Nesting deeper than the parser allows.
    NestingTooDeep = "E0105", Error;
    /// Content after the document.
    TrailingContent = "E0106", Error;
    /// A byte order mark at the start of the file.
    ByteOrderMark = "W0107", Warning;

    // E02xx: the JSON Schema.
    /// A field the format does not have.
    UnknownField = "E0201", Error;
    /// A required field is missing.
    MissingField = "E0202", Error;
    /// A value of the wrong JSON type.
    WrongType = "E0203", Error;
    /// A `schemaVersion` this build does not read.
    UnsupportedVersion = "E0204", Error;
    /// A string that does not match its pattern or allowed values.
    InvalidValue = "E0205", Error;
    /// A number or length out of range.
    OutOfRange = "E0206", Error;
    /// A step that is not one of the three shapes.
    InvalidStepShape = "E0207", Error;
    /// Another schema violation.
    SchemaViolation = "E0208", Error;
    /// An agent kind this build does not know.
    UnknownAgentKind = "E0209", Error;

    // E03xx: graph rules.
    /// Two steps with one id.
    DuplicateStepId = "E0301", Error;
    /// An id that is a Rust keyword.
    ReservedId = "E0302", Error;
    /// A step names an agent that is not declared.
    UnknownAgent = "E0303", Error;
    /// A step names a policy that is not declared.
    UnknownPolicy = "E0304", Error;
    /// A `${...}` that does not parse.
    MalformedReference = "E0305", Error;
    /// A reference to a step that does not exist.
    UnknownStep = "E0306", Error;
    /// A reference to a step that has not finished when the referring step starts.
    StepNotInScope = "E0307", Error;
    /// A reference to the output of a parallel or sequence block.
    BlockHasNoOutput = "E0308", Error;
    /// A duration that does not parse or is zero.
    InvalidDuration = "E0309", Error;
    /// Policy numbers that contradict each other or are out of range.
    InvalidPolicy = "E0310", Error;
    /// An inline JSON Schema that is not valid JSON Schema.
    InvalidJsonSchema = "E0311", Error;
    /// An inline JSON Schema construct the compiler does not support.
    UnsupportedSchemaConstruct = "E0312", Error;
    /// A name (a field, an enum value) that no Rust identifier can stand for.
    NotAnIdentifier = "E0313", Error;
    /// An agent that no step uses.
    UnusedAgent = "W0320", Warning;
    /// A policy that no step uses.
    UnusedPolicy = "W0321", Warning;
    /// Two steps calling one agent with different circuit breaker settings.
    BreakerSettingsDiffer = "W0322", Warning;

    // E04xx: types.
    /// A reference path that does not exist in the producer's schema.
    NoSuchField = "E0401", Error;
    /// A value whose type does not fit the consumer's field.
    TypeMismatch = "E0402", Error;
    /// A required input field that is not given.
    MissingInputField = "E0403", Error;
    /// An input field the agent does not have.
    UnknownInputField = "E0404", Error;
    /// Interpolation of a value that is not a string, number, integer or boolean.
    NotInterpolatable = "E0405", Error;
    /// A value that may be absent flowing into a required field.
    MaybeAbsent = "E0406", Error;
    /// An agent whose schemas cannot be found.
    AgentSchemaUnavailable = "W0407", Warning;
    /// A literal that does not fit the Rust type of the field it feeds.
    LiteralOutOfRange = "E0408", Error;

    // E041x: agent crates and `#[agent]` declarations.
    /// The agent's crate is not where the workflow says.
    AgentCrateNotFound = "E0410", Error;
    /// The crate at the agent's `path` has another name.
    CrateNameMismatch = "E0411", Error;
    /// The agent's function (or a module on its path) is not in the crate.
    AgentFunctionNotFound = "E0412", Error;
    /// The function is not marked `#[agent]`.
    NotAnAgent = "E0413", Error;
    /// The `#[agent]` declaration has errors.
    InvalidAgentDeclaration = "E0414", Error;
    /// A source file of the agent crate cannot be read or parsed.
    AgentSourceUnreadable = "E0415", Error;
    /// The workflow and the `#[agent]` declaration disagree.
    DeclarationMismatch = "E0416", Error;
    /// A declaration uses a named type the compiler cannot read from source.
    NamedTypeUnresolved = "W0417", Warning;
    /// The agent function or a module on its path is not `pub`.
    AgentNotPublic = "E0418", Error;
    /// A keyword of the workflow's input schema the program does not check.
    UncheckedInputKeyword = "W0419", Warning;

    // E042x: LLM agents.
    /// An LLM agent without an `input` or `output` schema (they are its types).
    LlmSchemaRequired = "E0420", Error;
    /// A prompt text referencing something other than the agent's own input.
    PromptReference = "E0421", Error;
    /// A prompt example that its agent's input or output schema rejects.
    ExampleMismatch = "E0422", Error;
    /// Output schema keywords the provider does not enforce: checked locally only.
    CheckedLocallyOnly = "W0423", Warning;
    /// An output schema construct the provider's structured output cannot express.
    ProviderCannotEnforce = "E0424", Error;
    /// A `baseUrl` that is not an http(s) URL.
    BadBaseUrl = "E0425", Error;

    // E043x: waits.
    /// A wait's payload schema that is not an object.
    WaitPayloadNotObject = "E0430", Error;

    // E044x: switches.
    /// A `switch` that is not exactly one `${...}` reference.
    SwitchNotAReference = "E0440", Error;
    /// A switch on a value that is not a string enum, a boolean or a string, or that may be absent.
    SwitchValueType = "E0441", Error;
    /// Values of the switch's enum (or boolean) that no case takes, without a `default`.
    MissingCase = "E0442", Error;
    /// A case that is not a value of the switch's enum (or boolean).
    UnknownCase = "E0443", Error;
    /// A switch on a string of any value without a `default`.
    SwitchNeedsDefault = "E0444", Error;
    /// A `default` that no value can reach: the cases take every value.
    UnreachableDefault = "W0445", Warning;
    /// Case outputs of different types.
    CaseOutputMismatch = "E0446", Error;
    /// Some branches of a switch declare an `output` and others do not.
    CaseOutputMissing = "E0447", Error;

    // E045x: maps.
    /// A map's `over` that is not one reference to a list that is always there.
    MapOverNotList = "E0450", Error;
    /// A map's item (`${NAME}`, `${map.index}`) referenced outside the map's body.
    MapItemOutOfScope = "E0451", Error;
    /// A map body whose items have no output (a parallel block, or a sequence ending in one).
    MapBodyHasNoOutput = "E0452", Error;
    /// A map's `as` that is a reference root, or the `as` of an enclosing map.
    MapItemName = "E0453", Error;
    /// A `wait` inside a map's body.
    WaitInMap = "E0454", Error;
    /// A switch inside a map's body, or a map inside a switch's case (not yet supported).
    MapSwitchNesting = "E0455", Error;

    // E046x: compile targets.
    /// A block the chosen target (`--target restate`) cannot run yet.
    UnsupportedOnTarget = "E0460", Error;
    /// A workflow id the chosen target cannot name a service by.
    ReservedOnTarget = "E0461", Error;

    // E05xx: test files.
    /// A test file that is not of the expected form.
    TestFile = "E0501", Error;
    /// A mock or expectation names a step the workflow does not have.
    TestUnknownStep = "E0502", Error;
    /// A mocked output, or a signal's payload, that its schema rejects.
    TestMockOutput = "E0503", Error;

    // E06xx: eval files.
    /// Two tasks with one id.
    EvalDuplicateTask = "E0601", Error;
    /// A task's agent that cannot be used: its workflow is missing or invalid, or the agent
    /// is not there or not an LLM agent.
    EvalAgentUnavailable = "E0602", Error;
    /// An input document the agent's input schema rejects.
    EvalInputMismatch = "E0603", Error;
    /// A constraint that is not exactly one well-formed check, or whose check cannot apply
    /// to its field.
    EvalBadConstraint = "E0604", Error;
    /// A constraint path, a `fields` entry or an `echoes` pointer naming a field the schema
    /// does not have.
    EvalNoSuchField = "E0605", Error;

    // E09xx: the compiler itself.
    /// A bug in orchestr8.
    Internal = "E0900", Error;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_severity_matches_prefix() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            // By number alone: `orchestr8 explain 0402` finds a code by its digits.
            assert!(seen.insert(&code.as_str()[1..]), "{} used twice", code.as_str());
            let expected = if code.as_str().starts_with('W') { Severity::Warning } else { Severity::Error };
            assert_eq!(code.severity(), expected, "{}", code.as_str());
        }
    }
}
