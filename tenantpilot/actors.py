"""Who is acting: a snapshot passed to the start seam and the audit recorder."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    kind: str  # platform | human | system
    id: int | None = None
    name: str = "System"
    email: str | None = None
    capabilities: frozenset = field(default_factory=frozenset)  # platform capabilities
    break_glass: bool = False
    # Acting through an API token: how audit rows and run contexts name it (never its
    # secret), and the token's capabilities (a tenant-plane token narrows the membership).
    token: dict | None = field(default=None, compare=False, hash=False)
    token_capabilities: frozenset | None = None

    @classmethod
    def system(cls, name: str = "System") -> "Actor":
        return cls(kind="system", name=name)

    @classmethod
    def platform(cls, user, break_glass: bool = False) -> "Actor":
        # ``user`` may be the owner seen through a token (web.apiv1.TokenIdentity): its
        # capabilities are already the token's share, and it names the token.
        caps = frozenset(user.capabilities or ()) if user.is_active else frozenset()
        return cls("platform", user.id, user.name, user.email, caps, break_glass,
                   token=getattr(user, "api_token", None), token_capabilities=getattr(user, "token_capabilities", None))

    @classmethod
    def human(cls, user) -> "Actor":
        return cls("human", user.id, user.name, user.email, token=getattr(user, "api_token", None),
                   token_capabilities=getattr(user, "token_capabilities", None))

    def can(self, *capabilities: str) -> bool:
        return all(c in self.capabilities for c in capabilities)

    def snapshot(self) -> dict:
        """What a run context keeps about its initiator: no e-mail, no secrets."""
        snap = {"type": self.kind, "id": self.id, "name": self.name, "break_glass": self.break_glass}
        if self.token:
            snap["api_token"] = dict(self.token)
        return snap
