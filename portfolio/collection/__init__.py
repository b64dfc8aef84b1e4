"""The collection cadence (régua de cobrança): facts, planner, dispatcher, legal guards, runner, simulation, KPIs."""
