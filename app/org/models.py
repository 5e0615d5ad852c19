"""Organisation model (DESIGN §2)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.types import UTCDateTime
from app.extensions import db


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class Street(TimestampMixin, db.Model):
    """街道: the street office, top of the local hierarchy."""

    __tablename__ = "street"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)

    communities: Mapped[list[Community]] = relationship(back_populates="street", order_by="Community.code")

    def __str__(self) -> str:
        return self.name


class Community(TimestampMixin, db.Model):
    """社区: a residents' community under a street."""

    __tablename__ = "community"
    __table_args__ = (UniqueConstraint("street_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    street_id: Mapped[int] = mapped_column(ForeignKey("street.id", ondelete="RESTRICT"), index=True)

    street: Mapped[Street] = relationship(back_populates="communities")
    compounds: Mapped[list[Compound]] = relationship(back_populates="community", order_by="Compound.code")
    grids: Mapped[list[Grid]] = relationship(back_populates="community", order_by="Grid.code")
    stations: Mapped[list[ServiceStation]] = relationship(back_populates="community")

    def __str__(self) -> str:
        return self.name


class Grid(TimestampMixin, db.Model):
    """网格: a grid of compounds looked after by grid workers (users with role grid_worker)."""

    __tablename__ = "grid"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="RESTRICT"), index=True)

    community: Mapped[Community] = relationship(back_populates="grids")
    compounds: Mapped[list[Compound]] = relationship(back_populates="grid", order_by="Compound.code")

    def __str__(self) -> str:
        return self.name


class Compound(TimestampMixin, db.Model):
    """小区: a residential compound; cases are routed from it."""

    __tablename__ = "compound"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(200))
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="RESTRICT"), index=True)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="SET NULL"), index=True)

    community: Mapped[Community] = relationship(back_populates="compounds")
    grid: Mapped[Grid | None] = relationship(back_populates="compounds")
    buildings: Mapped[list[Building]] = relationship(back_populates="compound", order_by="Building.name")
    contracts: Mapped[list[FirmContract]] = relationship(back_populates="compound", order_by="FirmContract.start_date")
    branch: Mapped[PartyBranch | None] = relationship(back_populates="compound", uselist=False)

    def __str__(self) -> str:
        return self.name


class Building(db.Model):
    """楼栋: a building of a compound (units/rooms are free text on the case)."""

    __tablename__ = "building"
    __table_args__ = (UniqueConstraint("compound_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    compound_id: Mapped[int] = mapped_column(ForeignKey("compound.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(50))

    compound: Mapped[Compound] = relationship(back_populates="buildings")

    def __str__(self) -> str:
        return f"{self.compound.name} {self.name}" if self.compound else self.name


class ServiceStation(TimestampMixin, db.Model):
    """党群服务站: where clerks take residents' requests; belongs to a community."""

    __tablename__ = "service_station"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="RESTRICT"), index=True)
    address: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(30))

    community: Mapped[Community] = relationship(back_populates="stations")

    def __str__(self) -> str:
        return self.name


class PropertyFirm(TimestampMixin, db.Model):
    """物业服务企业: a property service company; serves compounds through contracts."""

    __tablename__ = "property_firm"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    credit_code: Mapped[str | None] = mapped_column(String(18), unique=True)  # 统一社会信用代码
    contact_name: Mapped[str | None] = mapped_column(String(50))
    contact_phone: Mapped[str | None] = mapped_column(String(30))

    contracts: Mapped[list[FirmContract]] = relationship(back_populates="firm")

    def __str__(self) -> str:
        return self.name


class FirmContract(TimestampMixin, db.Model):
    """A firm's service contract for a compound, valid from ``start_date`` to ``end_date`` (inclusive)."""

    __tablename__ = "firm_contract"
    __table_args__ = (CheckConstraint("end_date IS NULL OR end_date >= start_date", name="dates_ordered"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    compound_id: Mapped[int] = mapped_column(ForeignKey("compound.id", ondelete="CASCADE"), index=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("property_firm.id", ondelete="RESTRICT"), index=True)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)

    compound: Mapped[Compound] = relationship(back_populates="contracts")
    firm: Mapped[PropertyFirm] = relationship(back_populates="contracts")

    def covers(self, day: date) -> bool:
        return self.start_date <= day and (self.end_date is None or day <= self.end_date)

    def __str__(self) -> str:
        end = self.end_date.isoformat() if self.end_date else "…"
        return (
            f"{self.compound.name if self.compound else ''} ↔ {self.firm.name if self.firm else ''} "
            f"({self.start_date.isoformat()}–{end})"
        )


class PartyBranch(TimestampMixin, db.Model):
    """小区党支部: the compound's party branch, which pre-deliberates listed matters."""

    __tablename__ = "party_branch"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    compound_id: Mapped[int] = mapped_column(ForeignKey("compound.id", ondelete="CASCADE"), unique=True)

    compound: Mapped[Compound] = relationship(back_populates="branch")

    def __str__(self) -> str:
        return self.name


def firm_for_compound(compound_id: int, day: date):
    """The select() for the contract covering ``day`` for a compound (latest start wins)."""
    return (
        select(FirmContract)
        .where(
            FirmContract.compound_id == compound_id,
            FirmContract.start_date <= day,
            (FirmContract.end_date.is_(None)) | (FirmContract.end_date >= day),
        )
        .order_by(FirmContract.start_date.desc())
        .limit(1)
    )
