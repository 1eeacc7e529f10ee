// The dashboard works without this script; it adds confirmation before
// cancelling, optional auto-refresh, and times in the reader's time zone.
(function () {
  'use strict'

  document.addEventListener('submit', function (event) {
    var message = event.target.getAttribute('data-confirm')
    if (message && !window.confirm(message)) event.preventDefault()
  })

  document.querySelectorAll('select[data-submit-on-change]').forEach(function (select) {
    select.addEventListener('change', function () { select.form.submit() })
  })

  var box = document.getElementById('auto-refresh')
  var KEY = 'jobs-dashboard-auto-refresh'
  if (box) {
    box.checked = window.localStorage.getItem(KEY) === '1'
    box.addEventListener('change', function () {
      window.localStorage.setItem(KEY, box.checked ? '1' : '0')
      if (box.checked) schedule()
    })
  }
  function schedule () {
    window.setTimeout(function () {
      if (box && box.checked) window.location.reload()
    }, 10000)
  }
  if (box && box.checked) schedule()

  var format = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' })
  document.querySelectorAll('time[datetime]').forEach(function (node) {
    var when = new Date(node.getAttribute('datetime'))
    if (!isNaN(when)) {
      node.title = node.textContent
      node.textContent = format.format(when)
    }
  })
})()
