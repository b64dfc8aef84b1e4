"""HTTP handlers, one module per resource. Thin: they translate HTTP to service calls and back."""

from .collection import CollectionController, PortfolioController
from .decisions import DecisionController
from .evaluate import EvaluateController
from .experiments import ExperimentController
from .kpis import KpiController
from .monitoring import EventController, LimitController, MonitoringController
from .ops import OperationsController
from .policies import PolicyController
from .replays import ReplayController

ROUTES = [EvaluateController, PolicyController, DecisionController, OperationsController, PortfolioController,
          CollectionController, KpiController, EventController, LimitController, MonitoringController,
          ReplayController, ExperimentController]
