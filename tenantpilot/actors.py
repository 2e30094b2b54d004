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

    @classmethod
    def system(cls, name: str = "System") -> "Actor":
        return cls(kind="system", name=name)

    @classmethod
    def platform(cls, user, break_glass: bool = False) -> "Actor":
        caps = frozenset(user.capabilities or ()) if user.is_active else frozenset()
        return cls("platform", user.id, user.name, user.email, caps, break_glass)

    @classmethod
    def human(cls, user) -> "Actor":
        return cls("human", user.id, user.name, user.email)

    def can(self, *capabilities: str) -> bool:
        return all(c in self.capabilities for c in capabilities)

    def snapshot(self) -> dict:
        """What a run context keeps about its initiator: no e-mail, no secrets."""
        return {"type": self.kind, "id": self.id, "name": self.name, "break_glass": self.break_glass}
