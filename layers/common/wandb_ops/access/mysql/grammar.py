"""Just enough of the MySQL/MariaDB account-statement grammar to clone a user exactly:
a tokenizer that respects quoting, and parsers for the lines of `SHOW GRANTS` and for
`SHOW CREATE USER`. Statements are re-targeted by replacing the grantee's exact span in
the original text, so everything else (column lists, quoted names, options) is kept
verbatim; nothing is split on strings like " TO ".

TLS requirements are the exception: MySQL 8/9 print `REQUIRE SUBJECT/ISSUER/CIPHER` values
without escaping quotes, so the printed clause cannot be tokenised reliably. They are read
from `mysql.user` (``TlsRequirement``), the printed clause is cut out only where it is found
exactly once, and the requirement is re-applied from the column values, quoted by the driver.
"""

import itertools
import re
from dataclasses import dataclass

from wandb_ops.core.errors import WandbOpsError

_PUNCTUATION = "(),@.;="
_WORD_END = re.compile(r"[\s`'\"(),@.;=]")


class GrammarError(WandbOpsError):
    """A statement the parser does not understand; nothing is guessed."""


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int
    quoted: bool

    def is_word(self, *words: str) -> bool:
        return not self.quoted and self.text.upper() in words


def tokenize(sql: str) -> list[Token]:
    tokens: list[Token] = []
    index, length = 0, len(sql)
    while index < length:
        char = sql[index]
        if char.isspace():
            index += 1
        elif char in "`'\"":
            end = _closing_quote(sql, index)
            tokens.append(Token(sql[index:end], index, end, quoted=True))
            index = end
        elif char in _PUNCTUATION:
            tokens.append(Token(char, index, index + 1, quoted=False))
            index += 1
        else:
            match = _WORD_END.search(sql, index)
            end = match.start() if match else length
            tokens.append(Token(sql[index:end], index, end, quoted=False))
            index = end
    return tokens


def _closing_quote(sql: str, start: int) -> int:
    quote = sql[start]
    index = start + 1
    while index < len(sql):
        char = sql[index]
        if char == "\\" and quote != "`":
            index += 2
            continue
        if char == quote:
            if index + 1 < len(sql) and sql[index + 1] == quote:  # doubled quote inside
                index += 2
                continue
            return index + 1
        index += 1
    raise GrammarError("unterminated quoted name or string")


def _top_level(tokens: list[Token]) -> list[tuple[int, Token]]:
    """Tokens outside parentheses (column lists), with their index."""
    depth, found = 0, []
    for position, token in enumerate(tokens):
        if token.text == "(" and not token.quoted:
            depth += 1
        elif token.text == ")" and not token.quoted:
            depth -= 1
        elif depth == 0:
            found.append((position, token))
    return found


def _account_end(tokens: list[Token], first: int) -> int:
    """Index just past an account (`user`, `user`@`host`) starting at tokens[first]."""
    if first >= len(tokens):
        raise GrammarError("an account name was expected")
    if first + 2 < len(tokens) and tokens[first + 1].text == "@" and not tokens[first + 1].quoted:
        return first + 3
    return first + 1


def quote_account(user: str, host: str) -> str:
    return f"{quote_string(user)}@{quote_string(host)}"


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def unquote(token_text: str) -> str:
    if token_text[:1] in "`'\"" and token_text[-1:] == token_text[:1]:
        quote = token_text[0]
        inner = token_text[1:-1].replace(quote * 2, quote)
        return inner if quote == "`" else inner.replace("\\\\", "\\")
    return token_text


# ---------------------------------------------------------------- SHOW GRANTS lines


@dataclass(frozen=True)
class GrantLine:
    """One line of SHOW GRANTS, with the grantee's span and any IDENTIFIED clause located."""

    text: str
    kind: str  # "grant" | "revoke" | "default_role"
    grantee: tuple[int, int]
    identified: tuple[int, int] | None
    require: tuple[int, int] | None = None  # MariaDB's REQUIRE clause: re-applied from mysql.user instead

    def retarget(self, account_sql: str) -> str:
        """The same statement for another account, without any password or TLS clause."""
        text = self.text
        cuts = [(self.grantee, account_sql)]
        cuts += [(span, "") for span in (self.identified, self.require) if span]
        for (start, end), replacement in sorted(cuts, reverse=True):
            text = text[:start] + replacement + text[end:]
        return text.strip()

    def normalized(self) -> str:
        return self.retarget("?")


_GRANTEE_KEYWORD = {"GRANT": ("grant", "TO"), "REVOKE": ("revoke", "FROM")}


def parse_grant_line(line: str) -> GrantLine:
    tokens = tokenize(line)
    if not tokens:
        raise GrammarError("empty SHOW GRANTS line")
    head = tokens[0].text.upper()
    if head in _GRANTEE_KEYWORD:
        kind, keyword = _GRANTEE_KEYWORD[head]
    elif head == "SET" and len(tokens) > 2 and tokens[1].is_word("DEFAULT") and tokens[2].is_word("ROLE"):
        kind, keyword = "default_role", "FOR"
    else:
        raise GrammarError(f"unsupported SHOW GRANTS line starting with {head}")
    positions = [index for index, token in _top_level(tokens) if token.is_word(keyword)]
    if len(positions) != 1:
        raise GrammarError(f"expected one {keyword} in a {head} line, found {len(positions)}")
    first = positions[0] + 1
    end = _account_end(tokens, first)
    grantee = (tokens[first].start, tokens[end - 1].end)
    identified = require = None
    position = end
    if position < len(tokens) and tokens[position].is_word("IDENTIFIED"):
        position = _next_clause(tokens, position + 1, "REQUIRE", "WITH")
        identified = (tokens[end].start, _start_of(tokens, position, line))
    if position < len(tokens) and tokens[position].is_word("REQUIRE"):
        stop = _next_clause(tokens, position + 1, "WITH")
        require = (tokens[position].start, _start_of(tokens, stop, line))
    return GrantLine(line, kind, grantee, identified, require)


def _next_clause(tokens: list[Token], position: int, *words: str) -> int:
    while position < len(tokens) and not tokens[position].is_word(*words):
        position += 1
    return position


def _start_of(tokens: list[Token], position: int, text: str) -> int:
    return tokens[position].start if position < len(tokens) else len(text)


# ---------------------------------------------------------------- TLS requirements


_TLS_TYPES = {"": "NONE", "ANY": "SSL", "X509": "X509"}


@dataclass(frozen=True)
class TlsRequirement:
    """An account's TLS requirement as ``mysql.user`` stores it (ssl_type, ssl_cipher, x509_issuer,
    x509_subject): the source of truth, since the printed clause is not always parseable."""

    ssl_type: str
    cipher: str = ""
    issuer: str = ""
    subject: str = ""

    def _items(self) -> list[tuple[str, str]]:
        return [(word, value) for word, value in (("SUBJECT", self.subject), ("ISSUER", self.issuer),
                                                 ("CIPHER", self.cipher)) if value]  # fmt: skip

    def clause(self) -> tuple[str, list[str]]:
        """``REQUIRE ...`` with %s placeholders for the values, and the values: the driver quotes them."""
        if self.ssl_type in _TLS_TYPES:
            return f"REQUIRE {_TLS_TYPES[self.ssl_type]}", []
        items = self._items()
        if self.ssl_type != "SPECIFIED" or not items:
            raise GrammarError(f"unknown TLS requirement (ssl_type {self.ssl_type!r}): refusing to guess it")
        return "REQUIRE " + " AND ".join(f"{word} %s" for word, _ in items), [value for _, value in items]

    def printed_forms(self) -> set[str]:
        """Every way a server prints this requirement: MariaDB escapes the values and orders them ISSUER,
        SUBJECT, CIPHER; MySQL prints them raw as SUBJECT, ISSUER, CIPHER; either may join with AND."""
        if self.ssl_type in _TLS_TYPES:
            return {f"REQUIRE {_TLS_TYPES[self.ssl_type]}"}
        forms = set()
        for order in itertools.permutations(self._items()):
            for quote in (lambda value: value, lambda value: quote_string(value)[1:-1]):
                for joint in (" ", " AND "):
                    forms.add("REQUIRE " + joint.join(f"{word} '{quote(value)}'" for word, value in order))
        return forms


def cut_require(statement: str, tls: TlsRequirement) -> str:
    """``statement`` without its REQUIRE clause, which must be found exactly once (or, for no
    requirement, not at all): a clause that cannot be located unambiguously is refused."""
    spans = {
        (found.start(), found.end())
        for form in tls.printed_forms()
        for found in re.finditer(re.escape(" " + form) + r"(?=\s|$)", statement)
    }
    if len(spans) == 1:
        start, end = spans.pop()
        return statement[:start] + statement[end:]
    if not spans and tls.ssl_type == "":
        return statement  # MariaDB prints nothing for REQUIRE NONE
    raise GrammarError(
        f"the TLS requirement ({tls.ssl_type}) appears {len(spans)} times in SHOW CREATE USER, not once: "
        "it cannot be read unambiguously, so it is not copied"
    )


# ---------------------------------------------------------------- SHOW CREATE USER


_CLAUSE_STARTS = ("REQUIRE", "WITH", "PASSWORD", "ACCOUNT", "FAILED_LOGIN_ATTEMPTS", "PASSWORD_LOCK_TIME")
_CLAUSE_STARTS_ALSO = ("COMMENT", "ATTRIBUTE", "DEFAULT")


@dataclass(frozen=True)
class CreateUser:
    """What SHOW CREATE USER says, minus the account, its password and its TLS requirement."""

    plugin: str
    default_roles: str  # the roles list of DEFAULT ROLE, verbatim, or ""
    options: str  # WITH limits / PASSWORD / ACCOUNT / ... clauses, verbatim


def parse_create_user(statement: str, tls: TlsRequirement) -> CreateUser:
    text = cut_require(statement, tls)
    tokens = tokenize(text)
    if any(
        token.is_word("REQUIRE") and not tokens[index - 1].is_word("PASSWORD") for index, token in _top_level(tokens)
    ):
        raise GrammarError("SHOW CREATE USER has a REQUIRE clause that does not match mysql.user: not copied")
    if len(tokens) < 3 or not (tokens[0].is_word("CREATE") and tokens[1].is_word("USER")):
        raise GrammarError("not a CREATE USER statement")
    position = _account_end(tokens, 2)
    plugin = "mysql_native_password"
    if position < len(tokens) and tokens[position].is_word("IDENTIFIED"):
        plugin, position = _skip_identified(tokens, position)
    default_roles = ""
    if position + 1 < len(tokens) and tokens[position].is_word("DEFAULT") and tokens[position + 1].is_word("ROLE"):
        start = position + 2
        position = start
        while position < len(tokens) and not tokens[position].is_word(*_CLAUSE_STARTS, *_CLAUSE_STARTS_ALSO):
            position += 1
        end = tokens[position].start if position < len(tokens) else len(text)
        default_roles = text[tokens[start].start : end].strip()
    options = text[tokens[position].start :].strip() if position < len(tokens) else ""
    return CreateUser(plugin=plugin, default_roles=default_roles, options=options)


def _skip_identified(tokens: list[Token], position: int) -> tuple[str, int]:
    """Step over IDENTIFIED WITH|VIA|BY ...; return the auth plugin and the next clause's index."""
    plugin = "mysql_native_password"
    method = tokens[position + 1] if position + 1 < len(tokens) else None
    if method is not None and method.is_word("WITH", "VIA") and position + 2 < len(tokens):
        plugin = unquote(tokens[position + 2].text)
    index = position + 2  # past IDENTIFIED and its WITH / VIA / BY
    while index < len(tokens):
        token = tokens[index]
        # PASSWORD right after BY (IDENTIFIED BY PASSWORD '<hash>') or followed by "(" (MariaDB's
        # USING PASSWORD('...')) belongs to the authentication, not to a PASSWORD clause.
        password_of_auth = token.is_word("PASSWORD") and (
            tokens[index - 1].is_word("BY") or (index + 1 < len(tokens) and tokens[index + 1].text == "(")
        )
        if token.is_word(*_CLAUSE_STARTS, *_CLAUSE_STARTS_ALSO) and not password_of_auth:
            break
        index += 1
    return plugin, index
