// Régua console: small progressive enhancements only; every page works without this file.
// CPF/CNPJ fields get a mask as you type and a check-digit test when you leave the field.
"use strict";
(function () {
  function digits(text) { return text.replace(/[^0-9A-Za-z]/g, "").toUpperCase(); }
  function maskCpf(d) {
    d = d.replace(/\D/g, "").slice(0, 11);
    return d.replace(/^(\d{3})(\d)/, "$1.$2").replace(/^(\d{3})\.(\d{3})(\d)/, "$1.$2.$3")
      .replace(/\.(\d{3})(\d{1,2})$/, ".$1-$2");
  }
  function maskCnpj(d) {
    d = d.slice(0, 14);
    return d.replace(/^(\w{2})(\w)/, "$1.$2").replace(/^(\w{2})\.(\w{3})(\w)/, "$1.$2.$3")
      .replace(/\.(\w{3})(\w)/, ".$1/$2").replace(/(\w{4})(\d{1,2})$/, "$1-$2");
  }
  function cpfOk(d) {
    if (!/^\d{11}$/.test(d) || /^(\d)\1{10}$/.test(d)) return false;
    for (var n = 9; n < 11; n++) {
      var sum = 0;
      for (var i = 0; i < n; i++) sum += Number(d[i]) * (n + 1 - i);
      if (((sum * 10) % 11) % 10 !== Number(d[n])) return false;
    }
    return true;
  }
  function cnpjOk(d) {
    if (!/^[0-9A-Z]{12}\d{2}$/.test(d)) return false;
    var weights = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
    for (var n = 12; n < 14; n++) {
      var sum = 0;
      for (var i = 0; i < n; i++) sum += (d.charCodeAt(i) - 48) * weights[i + 13 - n];
      var rest = sum % 11, check = rest < 2 ? 0 : 11 - rest;
      if (check !== Number(d[n])) return false;
    }
    return true;
  }
  document.querySelectorAll("input[data-kind=cpf], input[data-kind=cnpj]").forEach(function (input) {
    var cpf = input.dataset.kind === "cpf";
    input.addEventListener("input", function () { input.value = cpf ? maskCpf(input.value) : maskCnpj(digits(input.value)); });
    input.addEventListener("blur", function () {
      var d = digits(input.value);
      input.setCustomValidity(!d || (cpf ? cpfOk(d) : cnpjOk(d)) ? "" : (cpf ? "CPF" : "CNPJ") + " com dígitos verificadores inválidos");
    });
  });
})();
